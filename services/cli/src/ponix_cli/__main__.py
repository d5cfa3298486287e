"""``python -m ponix_cli``: the same as the ``ponix`` console script."""

from ponix_cli.app import main

if __name__ == "__main__":
    main()
