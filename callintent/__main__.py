import sys

from callintent.cli import main

sys.exit(main())
