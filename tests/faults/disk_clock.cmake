# Slow and failing disks, and clock jumps.
#
# disk_faults_test: dtmd on its SQLite store under fsync_shim (an LD_PRELOAD library, built
# here from fsync_shim.c: this kernel has no device-mapper to make a disk slow or failing),
# while dtm-faultload moves money between the banks (ledgers on the suite's PostgreSQL):
# fsync 200-1000 ms, fsync failing with EIO, writes failing with ENOSPC, and a kill -9 while
# fsync fails. About 65 s; longer: --rounds N (each round about 36 s more), --slow_seconds,
# --fail_seconds, --full_seconds.
#
# clock_jump_test: two replicas on the suite's PostgreSQL, one of them under libfaketime
# (Debian: faketime) jumping an hour forward and back, with dtm-faultload through both. About
# 70 s. The test compiles a small futex shim of its own with cc (its docstring says why);
# --faithful_waits runs the variant that shows what a backward step does to dtmd's timed waits.
enable_language(C)
add_library(dtm_fsync_shim MODULE fsync_shim.c)
set_target_properties(dtm_fsync_shim PROPERTIES PREFIX "lib" OUTPUT_NAME fsync_shim)
target_link_libraries(dtm_fsync_shim PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
target_compile_options(dtm_fsync_shim PRIVATE -Wall -Wextra)
# Preloaded into dtmd: no sanitizer runtime of its own, whatever the build adds to everything.
target_compile_options(dtm_fsync_shim PRIVATE -fno-sanitize=all)
target_link_options(dtm_fsync_shim PRIVATE -fno-sanitize=all)

add_test(NAME disk_faults_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/disk_faults_test.py
    --dtmd $<TARGET_FILE:dtmd> --faultload $<TARGET_FILE:dtm-faultload>
    --gen ${CMAKE_BINARY_DIR}/pygen --shim $<TARGET_FILE:dtm_fsync_shim>)
set_tests_properties(disk_faults_test PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE
  ${DTM_PG_TEST_PROPERTIES})

add_test(NAME clock_jump_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/clock_jump_test.py
    --dtmd $<TARGET_FILE:dtmd> --faultload $<TARGET_FILE:dtm-faultload>
    --gen ${CMAKE_BINARY_DIR}/pygen)
set_tests_properties(clock_jump_test PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE
  ${DTM_PG_TEST_PROPERTIES})

# The same with every absolute wall-clock wait of dtmd following the faked clock through the
# wait, as a real step is followed (--faithful_waits; see the test's docstring): a backward
# step must not stall dtmd's timers and loops. Without the workload, so nothing else wakes
# them. About 75 s.
add_test(NAME clock_jump_faithful_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/clock_jump_test.py
    --dtmd $<TARGET_FILE:dtmd> --gen ${CMAKE_BINARY_DIR}/pygen --faithful_waits --no_workload)
set_tests_properties(clock_jump_faithful_test PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE
  ${DTM_PG_TEST_PROPERTIES})
