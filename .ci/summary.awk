# The whole suite's count from a cargo test log: every `test result:` line (one per test
# binary, e.g. `test result: ok. 12 passed; 0 failed; 1 ignored; ...`) summed into one plain
# line, `N passed, N failed`.
/^test result: / {
  for (i = 2; i <= NF; i++) {
    if ($i ~ /^passed;?$/) passed += $(i - 1)
    if ($i ~ /^failed;?$/) failed += $(i - 1)
  }
}
END { printf "%d passed, %d failed\n", passed, failed }
