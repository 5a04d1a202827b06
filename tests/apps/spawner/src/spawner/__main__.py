import sys

from spawner import child

sys.stdout.write(child("print('hello from a child')"))
