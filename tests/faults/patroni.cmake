# dtmd's store on a real Patroni cluster (Debian's patroni, etcd-server, postgresql-15,
# python3-psycopg2): one etcd and two PostgreSQL nodes with synchronous replication, started
# and thrown away by the test itself (patroni_cluster.py), on 127.0.0.1 only.

# Two dtmd replicas on the cluster (one multi-host URL, target_session_attrs=read-write),
# the bank invariant workload and a saga probe, through a switchover and the kill -9 of the
# primary node; the banks' ledgers are on the suite's PostgreSQL. About 2 minutes; for more,
# run it by hand with --rounds N (about 90 s each) or --kill postmaster.
add_test(NAME pg_failover_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/pg_failover_test.py
    --dtmd $<TARGET_FILE:dtmd> --faultload $<TARGET_FILE:dtm-faultload>
    --gen ${CMAKE_BINARY_DIR}/pygen)
set_tests_properties(pg_failover_test PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE
  FIXTURES_REQUIRED pg ENVIRONMENT "DTM_TEST_PG=${DTM_TEST_PG}")

# What asynchronous replication loses in a failover: sagas dtmd acknowledged while the
# standby was cut off are missing on the promoted standby (counted; must be some). ~40 s.
add_test(NAME pg_async_loss_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/pg_failover_test.py
    --dtmd $<TARGET_FILE:dtmd> --faultload $<TARGET_FILE:dtm-faultload>
    --gen ${CMAKE_BINARY_DIR}/pygen --variant async-loss)
set_tests_properties(pg_async_loss_test PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE)

# The same with synchronous replication, where nothing acknowledged may be lost: the standby
# stalls, COMMITs wait for it, dtmd gives up on their answers and must not report them
# committed on the word of the primary alone (the store never ends a session waiting for the
# synchronous standby, and takes its commit marker's answer only once its own reading
# transaction has reached the standby). ~60 s.
add_test(NAME pg_stall_loss_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/pg_failover_test.py
    --dtmd $<TARGET_FILE:dtmd> --faultload $<TARGET_FILE:dtm-faultload>
    --gen ${CMAKE_BINARY_DIR}/pygen --variant stall-loss)
set_tests_properties(pg_stall_loss_test PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE)
