"""``python -m zerofwht.bench``: the benchmark CLI (see ``zerofwht.bench.cli``)."""
import sys

from .cli import main

sys.exit(main())
