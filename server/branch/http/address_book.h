// AddressBook: the addresses HTTP branch calls connect to, so that the calls to one name
// spread over every address it has (a Kubernetes headless Service's pods) instead of sticking
// to the first one, as libcurl's own resolution does.
//
// A name is resolved on the book's own threads (getaddrinfo, which blocks: never on the
// thread that asks), to all its addresses, which calls then take in turn (round-robin). A
// name in use is resolved again once its addresses are `refresh_interval` old; the calls
// meanwhile keep taking the old ones, so a refresh never delays a call. A failure that may
// pass (no answer from DNS) keeps the addresses known; an answer that the name has no address
// drops them. An address that refused a connection is passed over for `down_for` while the
// name has others. Names no call wanted for `idle_timeout` are forgotten, and past `max_names`
// the least recently used ones are.
//
// Only addresses of the name asked about are ever given for it: whatever an allow-list
// decided about the name holds for every address a call connects to.
//
// Thread-safe. `done` runs exactly once: on the calling thread when the name's addresses are
// known (or it is known not to resolve), otherwise on a book thread once they are; it must not
// block. Shutdown (and the destructor) waits for resolutions in progress to return.
#ifndef DTM_SERVER_BRANCH_HTTP_ADDRESS_BOOK_H_
#define DTM_SERVER_BRANCH_HTTP_ADDRESS_BOOK_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/runtime/clock.h"

namespace dtm {

struct AddressBookOptions {
  // A name's addresses are resolved again once they are this old and a call wants them: a
  // new pod behind the name gets calls within about this long (Kubernetes' DNS answers for
  // a Service live 5 s).
  absl::Duration refresh_interval = absl::Seconds(5);
  // A name that did not resolve fails calls at once for this long, then is asked again.
  absl::Duration failure_ttl = absl::Seconds(1);
  // An address that refused a connection is passed over for this long while others remain.
  absl::Duration down_for = absl::Seconds(1);
  absl::Duration idle_timeout = absl::Minutes(5);
  size_t max_names = 1000;
  int threads = 4;  // resolutions at once
};

class AddressBook {
 public:
  // Resolves `host` to its addresses (IP literals, IPv6 without brackets), blocking.
  // NOT_FOUND: the name has no address; another error: a failure that may pass.
  using Resolver = std::function<absl::StatusOr<std::vector<std::string>>(const std::string&)>;
  // An address for a call, or why there is none: what the resolution said; OUT_OF_RANGE when
  // every address is in `tried`; CANCELLED after Shutdown.
  using Picked = std::function<void(absl::StatusOr<std::string>)>;

  // getaddrinfo (AI_ADDRCONFIG: IPv6 addresses only where this machine has IPv6, IPv4 only
  // where it has IPv4), every distinct address.
  static absl::StatusOr<std::vector<std::string>> ResolveSystem(const std::string& host);

  // `resolver` null: ResolveSystem; `clock` null: the real one.
  explicit AddressBook(AddressBookOptions options = {}, Resolver resolver = nullptr,
                       Clock* clock = nullptr);
  ~AddressBook();  // Shutdown()

  // Gives `done` an address of `host` to connect to on `port`: the next one in turn that is
  // not in `tried` and not passed over (or, if all left are, the next one not in `tried`).
  void Pick(const std::string& host, int port, std::vector<std::string> tried, Picked done);
  // `address` of `host` refused a connection on `port`: pass it over for `down_for`.
  void MarkDown(const std::string& host, int port, const std::string& address);
  // Fails the picks waiting for a resolution with CANCELLED (and any later one), and waits
  // for the resolutions in progress to return. Idempotent.
  void Shutdown();

  // For tests and metrics.
  size_t name_count() const;
  int64_t resolutions() const;

 private:
  struct Waiter {
    std::vector<std::string> tried;
    Picked done;
  };
  struct Entry {
    std::string host;
    std::vector<std::string> addresses;  // sorted, distinct
    absl::Status error;                  // the last resolution's, while `addresses` is empty
    absl::Time resolved_at = absl::InfinitePast();
    absl::Time last_used;
    bool resolving = false;
    size_t next = 0;  // where the round-robin goes on
    absl::flat_hash_map<std::string, absl::Time> down_until;
    std::vector<Waiter> waiters;
  };
  using Ready = std::vector<std::pair<Picked, absl::StatusOr<std::string>>>;

  void Work();
  void Resolved(const std::string& key, absl::StatusOr<std::vector<std::string>> result,
                Ready* ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartResolving(const std::string& key, Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::string> Choose(Entry* e, const std::vector<std::string>& tried,
                                     absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry* EntryFor(const std::string& key, const std::string& host, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AddressBookOptions options_;
  const Resolver resolver_;
  std::unique_ptr<Clock> own_clock_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);  // keys to resolve
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t resolutions_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace dtm

#endif  // DTM_SERVER_BRANCH_HTTP_ADDRESS_BOOK_H_
