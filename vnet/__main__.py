import sys

from vnet.cli.main import main

sys.exit(main())
