import sys

from femion.cli import main

sys.exit(main())
