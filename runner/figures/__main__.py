import sys

from runner.figures import main

sys.exit(main())
