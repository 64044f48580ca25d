# The soak: both workloads (dtmd replicas on PostgreSQL in network namespaces; a dtmd on SQLite
# under fsync_shim) while every fault takes its turn: packet loss, delay, duplication, a cut
# between dtmd and the branches, a replica cut off from the database, kill -9 of replicas, a
# database crash, a slow and a failing disk, wall-clock steps of an hour (libfaketime). CI runs
# one rotation (about 3 minutes, also in the ASan variant); a long run by hand, e.g.
#   DTM_TEST_PG=... tests/faults/soak.py --dtmd build/bin/dtmd \
#     --faultload build/bin/dtm-faultload --netdelay build/tests/faults/netdelay \
#     --shim build/tests/faults/libfsync_shim.so --minutes 30
set(soak_faults)
if(DTM_SANITIZE)
  # No clock steps in a sanitizer build: libfaketime cannot be preloaded into it (the
  # sanitizer's runtime reads the clock before libfaketime is ready, and dtmd hangs at start).
  set(soak_faults --faults=loss,delay,duplicate,cut-calls,cut-d1-db,kill-d2,db-crash,slow-disk,failed-disk,kill-s1)
endif()
add_test(NAME soak_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/soak.py
    --dtmd $<TARGET_FILE:dtmd> --faultload $<TARGET_FILE:dtm-faultload>
    --netdelay $<TARGET_FILE:netdelay> --shim $<TARGET_FILE:dtm_fsync_shim> ${soak_faults})
set_tests_properties(soak_test PROPERTIES TIMEOUT 900 RUN_SERIAL TRUE LABELS soak
  ${DTM_PG_TEST_PROPERTIES})
