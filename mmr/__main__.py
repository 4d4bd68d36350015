from mmr.config import offline_hub_unless_told

offline_hub_unless_told()  # before the CLI's imports reach transformers

from mmr.cli import main  # noqa: E402

main()
