import sys

from flopaudit.cli import main

sys.exit(main())
