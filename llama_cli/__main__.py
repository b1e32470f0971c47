"""`python -m llama_cli` is `llama`."""

import sys

from llama_cli.app import main

sys.exit(main())
