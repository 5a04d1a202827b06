"""The compatibility matrix: plan cells, predict, observe on hosts, compare."""
