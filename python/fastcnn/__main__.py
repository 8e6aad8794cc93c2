"""``python -m fastcnn``: the same command line as the ``fastcnn`` script."""

from fastcnn.cli import main

raise SystemExit(main())
