from mmfuse.cli import console_main

console_main()
