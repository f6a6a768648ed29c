"""``python -m edgenas`` (also what ``torchrun -m edgenas`` runs)."""

from edgenas.cli import main

if __name__ == "__main__":
    main()
