#!/usr/bin/env python3
from siyu.cli import main

if __name__ == "__main__":
    main()
