from ponix_bench.command import main

main()
