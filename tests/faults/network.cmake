# Network faults: two dtmd replicas, PostgreSQL (dtmd's store, over TCP) and the branch
# services each in a network namespace of their own, on a bridge in a namespace of its own
# (netns.py; nothing changes in the machine's own namespace), under packet loss, delay with
# jitter, a partition between dtmd and the branches, duplicated and reordered packets, and a
# replica cut off from the database for longer than its lease. Needs root, nftables and
# iptables (Debian: nftables, iptables), and for delay netdelay, built here from netdelay.c
# with libnetfilter_queue (Debian: libnetfilter-queue-dev): the kernel these tests were
# written on has no netem qdisc, so packets are held in user space through NFQUEUE.
enable_language(C)
pkg_check_modules(NETFILTER_QUEUE REQUIRED IMPORTED_TARGET libnetfilter_queue libnfnetlink)
add_executable(netdelay netdelay.c)
target_link_libraries(netdelay PRIVATE PkgConfig::NETFILTER_QUEUE)
target_compile_options(netdelay PRIVATE -Wall -Wextra)

# Every phase in turn, the bank invariant audited after each (dtm-faultload exits 0). About
# 100 s; for longer faults, run it by hand with --seconds S (or DTM_NETFAULT_SECONDS), and
# e.g. --loss 30 --delay_ms 400 --jitter_ms 100. The lease phase cuts d1 off from the database
# in the middle of a batch: the session it leaves on the server holds row locks until the
# server ends it, which dtmd asks for below its lease (idle_in_transaction_session_timeout);
# without that, d2 could not take the work over while the partition lasts.
add_test(NAME network_faults_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/network_faults_test.py
    --dtmd $<TARGET_FILE:dtmd> --faultload $<TARGET_FILE:dtm-faultload>
    --netdelay $<TARGET_FILE:netdelay> --gen ${CMAKE_BINARY_DIR}/pygen)
set_tests_properties(network_faults_test PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE)
