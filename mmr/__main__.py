from mmr.cli import main

main()
