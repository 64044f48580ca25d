#!/usr/bin/env bash
# The project's checks: the README's test command, and all that .ci/run runs. Installs what
# is missing (scripts/setup.sh), then runs the variants in this order, each with a header and
# a result line, and a summary at the end. A failing variant does not stop the later ones;
# the exit status is 1 if any failed.
#
#   scripts/test.sh                        every variant
#   scripts/test.sh VARIANT... [ARGS...]   only these variants (in the order given)
#   scripts/test.sh default -R Saga        ARGS go to every ctest run (default, asan, tsan)
#   scripts/test.sh -R Saga                every variant, the ctest runs filtered
#   scripts/test.sh --help                 this text
#
# Variants:
#   default  g++ RelWithDebInfo build in build/ ($BUILD_DIR), the whole ctest suite.
#   format   clang-format --dry-run -Werror on every tracked *.cc and *.h.
#   asan     clang with -Werror -Wthread-safety (the ABSL_GUARDED_BY annotations), ASan and
#            UBSan, in build-asan/: the whole ctest suite but the infrastructure-fault tests
#            of tests/faults/ other than the soak (the bank invariant test with its
#            usual 3000 transfers: ~35 s under ASan; DTM_INVARIANT_TRANSFERS and
#            DTM_INVARIANT_RESTARTS change that, as everywhere).
#   tsan     clang with TSan in build-tsan/: engine_test runtime_test store_test common_test.
#            Abseil is built from Debian's own source of the installed version
#            (scripts/abseil-source.sh): Debian's libabsl has no TSan instrumentation, so TSan
#            cannot see absl::Mutex and would call every guarded field a race.
#   tidy     clang-tidy (.clang-tidy) on every tracked .cc with build-asan's compile commands
#            (tests/fuzz/ with build-fuzz's, the only build that has them); any finding fails
#            it. Files found clean are remembered (scripts/tidy.py).
#   fuzz     clang with libFuzzer, ASan and UBSan in build-fuzz/ (-DDTM_FUZZ=ON, no tests or
#            examples): builds the fuzz targets of tests/fuzz/ (fuzz_validation fuzz_target
#            fuzz_codec fuzz_dtm_json). Each runs once on every seed of
#            tests/fuzz/corpus/<target>/ (whole: regression inputs may be large), then fuzzes
#            for DTM_FUZZ_SECONDS (45) from a copy of its seeds in
#            build-fuzz/fuzz-run/<target>/corpus/ (the tree is never written), with
#            tests/fuzz/<target>.dict, inputs up to 4 KiB. Prints each target's executions and
#            corpus growth; a failing seed, a crash, leak, timeout (10 s), broken invariant or
#            more than 2 GB of memory fails it and names the input, kept in
#            build-fuzz/fuzz-run/<target>/ (rerun it: build-fuzz/tests/fuzz/<target> FILE).
#            A long run, e.g. before a release or after touching a parser:
#              DTM_FUZZ_SECONDS=3600 scripts/test.sh fuzz
#            DTM_FUZZ_TARGETS="fuzz_target fuzz_codec" runs only those. New inputs worth
#            keeping go into tests/fuzz/corpus/<target>/ (only those adding coverage:
#            build-fuzz/tests/fuzz/<target> -merge=1 tests/fuzz/corpus/<target> NEW_DIR), a
#            bug's minimised input as regression-<what> (<target> -minimize_crash=1 FILE).
#
# Sanitizer reports (of the tests and of the dtmd processes they start) are written to
# <build>/sanitizer-logs/ and printed after the ctest run; any report fails the variant.
# Suppressions, only for reports inside Debian's uninstrumented libraries, never for the
# project's code: scripts/lsan.supp, scripts/ubsan.supp, scripts/tsan.supp (when present).
#
# Each ctest run makes its temporary files (databases, dtmd logs, key files) in a TMPDIR of
# its own under $TMPDIR (else /tmp): removed when the run passed, named when it failed.
#
# Environment: BUILD_DIR (the default variant's build directory, build), DTM_JOBS (ctest -j
# and clang-tidy processes, 2), DTM_CACHE_DIR (Abseil's source and the clang-tidy cache,
# /var/cache/dtm-cpp), DTM_FUZZ_SECONDS and DTM_FUZZ_TARGETS (the fuzz variant).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ALL_VARIANTS=(default format asan tsan tidy fuzz)
JOBS=${DTM_JOBS:-2}

variants=()
while [ $# -gt 0 ]; do
  case "$1" in
    default | format | asan | tsan | tidy | fuzz) variants+=("$1") ;;
    -h | --help)
      sed -n '2,/^set -uo pipefail/{/^#/s/^# \{0,1\}//p}' "$0"
      exit 0
      ;;
    -*) break ;;
    *)
      echo "test: unknown variant '$1' (${ALL_VARIANTS[*]}; ctest arguments start with -)" >&2
      exit 2
      ;;
  esac
  shift
done
[ ${#variants[@]} -eq 0 ] && variants=("${ALL_VARIANTS[@]}")
CTEST_ARGS=("$@")

# --- helpers ---------------------------------------------------------------------------------

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

rule() { printf '%.0s=' {1..96}; echo; }

# configure DIR CC CXX CMAKE_ARGS...: (re)configures DIR with Ninja when it has never been
# configured with these settings; a build directory made with another compiler starts over.
configure() {
  local dir=$1 cc=$2 cxx=$3
  shift 3
  local want="$cxx $*"
  if [ -f "$dir/build.ninja" ] && [ "$(cat "$dir/.dtm-configured" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  local cached
  cached=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt" 2>/dev/null || true)
  if [ -n "$cached" ] &&
    [ "$(readlink -f "$cached")" != "$(readlink -f "$(command -v "$cxx")")" ]; then
    echo "test: $dir was configured with $cached, not $cxx: configuring it from scratch"
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  CC=$cc CXX=$cxx cmake -S . -B "$dir" -G Ninja "$@" || return 1
  echo "$want" >"$dir/.dtm-configured"
}

# The tests make their databases, dtmd logs and key files under $TMPDIR: each ctest run gets
# a TMPDIR of its own, removed when the run passed and kept (and named) when it failed.
run_ctest() {  # DIR [ctest args...]
  local dir=$1 scratch rc=0
  shift
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/dtm-ctest-XXXXXX") || return 1
  # Open to the postgres user: the fault tests run PostgreSQL and Patroni as that user in
  # directories of their own under it.
  chmod 755 "$scratch"
  (cd "$dir" && TMPDIR=$scratch ctest --output-on-failure --timeout 300 -j"$JOBS" "$@") || rc=$?
  if [ "$rc" -eq 0 ]; then
    rm -rf "$scratch"
  else
    echo "test: the failed run's temporary files (dtmd logs, databases): $scratch"
  fi
  return $rc
}

# Sanitizer runtime options for the ctest run of DIR: every report goes to a file in
# DIR/sanitizer-logs (the dtmd children's too, whose stderr the tests may not show).
sanitizer_env() {
  local dir=$1 logs="$ROOT/$1/sanitizer-logs"
  rm -rf "$logs"
  mkdir -p "$logs"
  local common="halt_on_error=1:log_path=$logs/report"
  local asan=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1
  asan+=:check_initialization_order=1:strict_init_order=1
  export ASAN_OPTIONS="$common:$asan"
  export LSAN_OPTIONS="print_suppressions=0$(suppressions lsan)"
  export UBSAN_OPTIONS="$common:print_stacktrace=1$(suppressions ubsan)"
  export TSAN_OPTIONS="$common:second_deadlock_stack=1$(suppressions tsan)"
}

suppressions() {  # lsan|ubsan|tsan: the option naming scripts/<it>.supp, if there is one
  if [ -f "$ROOT/scripts/$1.supp" ]; then echo ":suppressions=$ROOT/scripts/$1.supp"; fi
}

print_sanitizer_env() {
  local v
  for v in "$@"; do echo "test: $v=${!v}"; done
}

# Prints the reports in DIR/sanitizer-logs; fails if there is any.
sanitizer_reports() {
  local logs="$ROOT/$1/sanitizer-logs" f n=0
  for f in "$logs"/*; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    echo "---- sanitizer report $f"
    cat "$f"
  done
  if [ $n -gt 0 ]; then
    echo "test: $n sanitizer report(s) in $logs"
    return 1
  fi
  echo "test: no sanitizer reports"
}

# --- variants --------------------------------------------------------------------------------
# Each runs in a subshell with `set -e`: the first failing step ends the variant.

title_default="g++ RelWithDebInfo in ${BUILD_DIR:-build}/, the whole ctest suite"
variant_default() {
  local dir=${BUILD_DIR:-build}
  configure "$dir" gcc g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$dir"
  run_ctest "$dir" "${CTEST_ARGS[@]}"
}

title_format="clang-format --dry-run -Werror on every tracked *.cc and *.h"
variant_format() {
  local files
  mapfile -t files < <(git ls-files '*.cc' '*.h')
  echo "test: $(clang-format --version), ${#files[@]} files"
  clang-format --dry-run -Werror "${files[@]}"
  echo "test: all ${#files[@]} files formatted (scripts/format.sh fixes them)"
}

title_asan="clang -Werror -Wthread-safety, ASan+UBSan, in build-asan/, the whole ctest suite"
variant_asan() {
  configure build-asan clang clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDTM_SANITIZE=address,undefined -DDTM_WERROR=ON
  cmake --build build-asan
  sanitizer_env build-asan
  print_sanitizer_env ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
  local rc=0
  # The infrastructure-fault tests take ten minutes one after the other: under ASan only the
  # soak, which goes through every one of their faults (label "soak"; the others "faults").
  run_ctest build-asan -LE '^faults$' "${CTEST_ARGS[@]}" || rc=$?
  sanitizer_reports build-asan || rc=1
  return $rc
}

TSAN_TARGETS=(engine_test runtime_test store_test common_test)
title_tsan="clang TSan, Abseil from Debian's source, in build-tsan/: ${TSAN_TARGETS[*]}"
variant_tsan() {
  local absl
  absl=$(scripts/abseil-source.sh)
  echo "test: Abseil source $absl"
  configure build-tsan clang clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDTM_SANITIZE=thread \
    -DDTM_WERROR=ON -DDTM_ABSEIL_SOURCE="$absl" -DDTM_BUILD_EXAMPLES=OFF
  cmake --build build-tsan --target "${TSAN_TARGETS[@]}"
  sanitizer_env build-tsan
  print_sanitizer_env TSAN_OPTIONS
  local rc=0
  # The build configures more tests than these targets: the others are "<target>_NOT_BUILT".
  run_ctest build-tsan -E '_NOT_BUILT$' "${CTEST_ARGS[@]}" || rc=$?
  sanitizer_reports build-tsan || rc=1
  return $rc
}

title_tidy="clang-tidy (.clang-tidy) on every tracked .cc, build-asan's compile commands"
variant_tidy() {
  configure build-asan clang clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDTM_SANITIZE=address,undefined -DDTM_WERROR=ON
  # The generated protobuf headers the sources include (nothing to do after the asan variant).
  cmake --build build-asan --target dtm_proto dtm_dtmgimp_proto dtm_bank_proto
  local files fuzz rc=0
  mapfile -t files < <(git ls-files '*.cc' ':(exclude)tests/fuzz/*')
  mapfile -t fuzz < <(git ls-files 'tests/fuzz/*.cc')
  scripts/tidy.py build-asan "${files[@]}" || rc=$?
  # The fuzz targets exist only in the fuzz build: checked with its compile commands.
  if [ ${#fuzz[@]} -gt 0 ]; then
    configure_fuzz
    cmake --build build-fuzz --target dtm_proto dtm_dtmgimp_proto
    scripts/tidy.py build-fuzz "${fuzz[@]}" || rc=$?
  fi
  return $rc
}

FUZZ_TARGETS=(${DTM_FUZZ_TARGETS:-fuzz_validation fuzz_target fuzz_codec fuzz_dtm_json fuzz_dtmgimp})
FUZZ_SECONDS=${DTM_FUZZ_SECONDS:-45}
title_fuzz="clang libFuzzer+ASan+UBSan in build-fuzz/: ${FUZZ_TARGETS[*]}, ${FUZZ_SECONDS} s each"
configure_fuzz() {
  configure build-fuzz clang clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDTM_FUZZ=ON \
    -DDTM_SANITIZE=address,undefined -DDTM_WERROR=ON -DDTM_BUILD_TESTS=OFF \
    -DDTM_BUILD_EXAMPLES=OFF
}

variant_fuzz() {
  configure_fuzz
  cmake --build build-fuzz --target "${FUZZ_TARGETS[@]}"
  local run=$ROOT/build-fuzz/fuzz-run
  rm -rf "$run"
  mkdir -p "$run"
  # libFuzzer reads the reports on stderr: no log_path here. Leaks are checked per input.
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1"
  ASAN_OPTIONS+=:strict_string_checks=1:check_initialization_order=1:strict_init_order=1
  export LSAN_OPTIONS="print_suppressions=0$(suppressions lsan)"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1$(suppressions ubsan)"
  print_sanitizer_env ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
  local rc=0 t lines=()
  for t in "${FUZZ_TARGETS[@]}"; do
    fuzz_one "$t" "$run/$t" || rc=1
    lines+=("$(cat "$run/$t/result")")
  done
  echo
  printf 'test: %-16s %-8s %12s %10s %s\n' target result executions exec/s corpus
  for t in "${lines[@]}"; do echo "test: $t"; done
  return $rc
}

# fuzz_one TARGET DIR: first runs TARGET once on each of its seeds, whole (the fuzzing run
# reads none beyond -max_len, and a failing seed would stop it at once); then fuzzes for
# FUZZ_SECONDS from a copy of the seeds that passed, in DIR/corpus. Logs in DIR/seeds.log and
# DIR/log, a failing input in DIR/ (crash-*, leak-*, timeout-*, oom-*), the summary line in
# DIR/result.
fuzz_one() {
  local t=$1 dir=$2 bin=$ROOT/build-fuzz/tests/fuzz/$1
  local result=PASSED seeds=0 bad=0 f
  mkdir -p "$dir/corpus"
  while IFS= read -r -d '' f; do
    seeds=$((seeds + 1))
    if "$bin" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$dir/seed-" "$f" \
      >"$dir/seed.log" 2>&1; then
      cp "$f" "$dir/corpus/"
    else
      bad=$((bad + 1))
      result=FAILED
      echo "---- $t fails on its seed $f:"
      # The report's beginning (a stack overflow's has hundreds of frames) and its summary.
      grep -v -e '^INFO: ' -e '^    #[0-9]* 0x[0-9a-f]* in fuzzer::' "$dir/seed.log" |
        awk 'NR <= 30 || /^SUMMARY/'
      echo "test: $t: the whole report: $dir/seeds.log"
      echo "test: $t: FAILING SEED $f; rerun: ${bin#"$ROOT"/} $f"
    fi
    cat "$dir/seed.log" >>"$dir/seeds.log"
  done < <(find "tests/fuzz/corpus/$t" -type f -print0 2>/dev/null | sort -z)
  local args=(-max_total_time="$FUZZ_SECONDS" -max_len=4096 -rss_limit_mb=2048 -timeout=10
    -print_final_stats=1 -artifact_prefix="$dir/")
  if [ -f "tests/fuzz/$t.dict" ]; then args+=(-dict="$ROOT/tests/fuzz/$t.dict"); fi
  echo "test: $t: $seeds seeds ($bad failing); fuzzing ${FUZZ_SECONDS} s: ${bin#"$ROOT"/}" \
    "${args[*]} $dir/corpus"
  local status=0
  "$bin" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || status=$?
  local execs rate corpus found=()
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  mapfile -t found < <(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$dir/log" | sed "s/^/test: $t: /" || true
  if [ "$status" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
    result=FAILED
    echo "---- $t: the fuzzing run failed (exit $status); the end of $dir/log:"
    tail -n 80 "$dir/log"
    for f in "${found[@]}"; do
      echo "test: $t: FAILING INPUT $f ($(wc -c <"$f") bytes); rerun: ${bin#"$ROOT"/} $f"
    done
  fi
  local passed=$((seeds - bad))
  printf '%-16s %-8s %12s %10s %s\n' "$t" "$result" "${execs:-?}" "${rate:-?}" \
    "$passed seeds -> $corpus files (+$((corpus - passed)))" >"$dir/result"
  [ "$result" = PASSED ]
}

# --- main ------------------------------------------------------------------------------------

scripts/setup.sh || exit 1

declare -A result took
total_start=$SECONDS
i=0
for v in "${variants[@]}"; do
  i=$((i + 1))
  title_var="title_$v"
  echo
  rule
  echo "== [$i/${#variants[@]}] $v: ${!title_var}"
  rule
  start=$SECONDS
  (
    set -e
    "variant_$v"
  )
  rc=$?
  took[$v]=$((SECONDS - start))
  if [ $rc -eq 0 ]; then result[$v]=PASSED; else result[$v]="FAILED (exit $rc)"; fi
  echo "== $v: ${result[$v]} in $(duration "${took[$v]}")"
done

echo
rule
echo "== Summary"
failed=0
for v in "${variants[@]}"; do
  printf '   %-8s %-16s %8s\n' "$v" "${result[$v]}" "$(duration "${took[$v]}")"
  [ "${result[$v]}" = PASSED ] || failed=1
done
printf '   %-8s %-16s %8s\n' total "" "$(duration $((SECONDS - total_start)))"
rule
exit $failed
