#include "server/branch/http/address_book.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/runtime/thread_name.h"

namespace dtm {
namespace {

constexpr absl::Duration kSweepInterval = absl::Seconds(10);

std::string Key(const std::string& host, int port) { return absl::StrCat(host, ":", port); }

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> AddressBook::ResolveSystem(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    std::string why = absl::StrCat("cannot resolve ", host, ": ",
                                   rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc));
    bool no_address = rc == EAI_NONAME;
#ifdef EAI_NODATA
    no_address = no_address || rc == EAI_NODATA;
#endif
#ifdef EAI_ADDRFAMILY
    no_address = no_address || rc == EAI_ADDRFAMILY;
#endif
    return no_address ? absl::NotFoundError(why) : absl::UnavailableError(why);
  }
  std::vector<std::string> out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {0};
    const void* raw = nullptr;
    if (a->ai_family == AF_INET) {
      raw = &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr;
    } else if (a->ai_family == AF_INET6) {
      raw = &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr;
    }
    if (raw != nullptr && inet_ntop(a->ai_family, raw, text, sizeof(text)) != nullptr &&
        !Contains(out, text)) {
      out.emplace_back(text);
    }
  }
  freeaddrinfo(found);
  if (out.empty()) return absl::NotFoundError(absl::StrCat("cannot resolve ", host));
  return out;
}

AddressBook::AddressBook(AddressBookOptions options, Resolver resolver, Clock* clock)
    : options_(options),
      resolver_(resolver ? std::move(resolver) : Resolver(&ResolveSystem)),
      own_clock_(clock ? nullptr : std::make_unique<RealClock>()),
      clock_(clock ? clock : own_clock_.get()) {
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] {
      NameThisThread("dtm-resolve");
      Work();
    });
  }
}

AddressBook::~AddressBook() { Shutdown(); }

size_t AddressBook::name_count() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

int64_t AddressBook::resolutions() const {
  absl::MutexLock lock(&mu_);
  return resolutions_;
}

AddressBook::Entry* AddressBook::EntryFor(const std::string& key, const std::string& host,
                                          absl::Time now) {
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second.get();
  auto idle = [](const Entry& e) { return !e.resolving && e.waiters.empty(); };
  if (now - last_sweep_ >= kSweepInterval) {
    last_sweep_ = now;
    absl::erase_if(entries_, [&](const auto& kv) {
      return idle(*kv.second) && now - kv.second->last_used >= options_.idle_timeout;
    });
  }
  while (entries_.size() >= options_.max_names) {  // room for one more
    auto oldest = entries_.end();
    for (auto e = entries_.begin(); e != entries_.end(); ++e) {
      if (idle(*e->second) &&
          (oldest == entries_.end() || e->second->last_used < oldest->second->last_used)) {
        oldest = e;
      }
    }
    if (oldest == entries_.end()) break;  // all busy: go over the bound rather than fail
    entries_.erase(oldest);
  }
  auto e = std::make_unique<Entry>();
  e->host = host;
  return entries_.emplace(key, std::move(e)).first->second.get();
}

void AddressBook::StartResolving(const std::string& key, Entry* e) {
  e->resolving = true;
  queue_.push_back(key);
}

absl::StatusOr<std::string> AddressBook::Choose(Entry* e, const std::vector<std::string>& tried,
                                                absl::Time now) {
  if (e->addresses.empty()) return e->error;
  const size_t n = e->addresses.size();
  for (bool skip_down : {true, false}) {
    for (size_t i = 0; i < n; ++i) {
      size_t at = (e->next + i) % n;
      const std::string& a = e->addresses[at];
      if (Contains(tried, a)) continue;
      if (skip_down) {
        auto down = e->down_until.find(a);
        if (down != e->down_until.end() && down->second > now) continue;
      }
      e->next = (at + 1) % n;
      return a;
    }
  }
  return absl::OutOfRangeError(absl::StrCat("every address of ", e->host, " was tried"));
}

void AddressBook::Pick(const std::string& host, int port, std::vector<std::string> tried,
                       Picked done) {
  absl::StatusOr<std::string> result;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) {
      result = absl::CancelledError("coordinator is shutting down");
    } else {
      const absl::Time now = clock_->Now();
      const std::string key = Key(host, port);
      Entry* e = EntryFor(key, host, now);
      e->last_used = now;
      const absl::Duration age = now - e->resolved_at;
      if (!e->addresses.empty()) {
        // Known: answer at once, and refresh in the background when due.
        if (!e->resolving && age >= options_.refresh_interval) StartResolving(key, e);
        result = Choose(e, tried, now);
      } else if (!e->error.ok() && age < options_.failure_ttl) {
        result = e->error;
      } else {
        if (!e->resolving) StartResolving(key, e);
        e->waiters.push_back(Waiter{std::move(tried), std::move(done)});
        return;
      }
    }
  }
  done(std::move(result));
}

void AddressBook::MarkDown(const std::string& host, int port, const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(Key(host, port));
  if (it == entries_.end() || !Contains(it->second->addresses, address)) return;
  it->second->down_until[address] = clock_->Now() + options_.down_for;
}

void AddressBook::Resolved(const std::string& key, absl::StatusOr<std::vector<std::string>> result,
                           Ready* ready) {
  ++resolutions_;
  auto it = entries_.find(key);
  if (it == entries_.end()) return;  // cannot happen: a resolving entry is never dropped
  Entry* e = it->second.get();
  const absl::Time now = clock_->Now();
  e->resolving = false;
  e->resolved_at = now;
  if (result.ok() && !result->empty()) {
    std::vector<std::string> addresses = *std::move(result);
    std::sort(addresses.begin(), addresses.end());
    addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
    absl::erase_if(e->down_until, [&](const auto& kv) { return !Contains(addresses, kv.first); });
    e->addresses = std::move(addresses);
    e->next %= e->addresses.size();
    e->error = absl::OkStatus();
  } else if (result.ok() || absl::IsNotFound(result.status())) {
    // The name has no address (any more): its old ones may be someone else's by now.
    e->addresses.clear();
    e->down_until.clear();
    e->next = 0;
    e->error = result.ok() ? absl::NotFoundError(absl::StrCat("cannot resolve ", e->host))
                           : result.status();
  } else if (e->addresses.empty()) {
    e->error = result.status();
  }  // else: a failure that may pass; the addresses known stay in use until the next try
  for (Waiter& w : e->waiters) ready->emplace_back(std::move(w.done), Choose(e, w.tried, now));
  e->waiters.clear();
}

void AddressBook::Work() {
  for (;;) {
    std::string key, host;
    {
      absl::MutexLock lock(&mu_);
      auto work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return shutdown_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&work));
      if (shutdown_) return;
      key = std::move(queue_.front());
      queue_.pop_front();
      host = entries_.at(key)->host;
    }
    absl::StatusOr<std::vector<std::string>> result = resolver_(host);  // blocks
    Ready ready;
    {
      absl::MutexLock lock(&mu_);
      Resolved(key, std::move(result), &ready);
    }
    for (auto& [done, picked] : ready) done(std::move(picked));
  }
}

void AddressBook::Shutdown() {
  Ready cancelled;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      for (auto& [key, e] : entries_) {
        for (Waiter& w : e->waiters) {
          cancelled.emplace_back(std::move(w.done),
                                 absl::CancelledError("coordinator is shutting down"));
        }
        e->waiters.clear();
      }
      queue_.clear();
    }
  }
  for (auto& [done, status] : cancelled) done(std::move(status));
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace dtm
