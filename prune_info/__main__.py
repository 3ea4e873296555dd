"""``python -m prune_info`` runs the command line interface."""

from prune_info._entry import main

if __name__ == "__main__":
    main()
