from xdistill.cli.main import main

main()
