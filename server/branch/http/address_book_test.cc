// AddressBook with a scripted resolver and a fake clock: round-robin over every address,
// refreshing without delaying calls, what a failed resolution does, addresses passed over.
#include "server/branch/http/address_book.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/fakes/fake_clock.h"

namespace dtm {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// A DNS the test scripts: what each name resolves to, and a gate that holds resolutions.
class ScriptedDns {
 public:
  void Set(const std::string& host, absl::StatusOr<std::vector<std::string>> answer) {
    absl::MutexLock lock(&mu_);
    answers_[host] = std::move(answer);
  }
  void Hold(bool hold) {
    absl::MutexLock lock(&mu_);
    held_ = hold;
  }
  int asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }
  AddressBook::Resolver resolver() {
    return [this](const std::string& host) -> absl::StatusOr<std::vector<std::string>> {
      absl::MutexLock lock(&mu_);
      ++asked_;
      auto open = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !held_; };
      mu_.Await(absl::Condition(&open));
      auto it = answers_.find(host);
      if (it == answers_.end()) return absl::NotFoundError("cannot resolve " + host);
      return it->second;
    };
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, absl::StatusOr<std::vector<std::string>>> answers_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int asked_ ABSL_GUARDED_BY(mu_) = 0;
};

class AddressBookTest : public ::testing::Test {
 protected:
  AddressBookTest() {
    options_.refresh_interval = absl::Seconds(5);
    options_.failure_ttl = absl::Seconds(1);
    options_.down_for = absl::Seconds(1);
  }

  // Picks synchronously (waits for the resolution if there is one).
  absl::StatusOr<std::string> PickSync(AddressBook& book, const std::string& host,
                                       std::vector<std::string> tried = {}) {
    absl::Notification done;
    absl::StatusOr<std::string> out;
    book.Pick(host, 80, std::move(tried), [&](absl::StatusOr<std::string> a) {
      out = std::move(a);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }
  // Waits until the book has resolved `n` times in all.
  void AwaitResolutions(AddressBook& book, int64_t n) {
    for (int i = 0; i < 20000 && book.resolutions() < n; ++i) absl::SleepFor(absl::Milliseconds(1));
    ASSERT_GE(book.resolutions(), n);
  }

  AddressBookOptions options_;
  ScriptedDns dns_;
  FakeClock clock_;
};

TEST_F(AddressBookTest, CallsTakeEveryAddressOfANameInTurn) {
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.1"});
  AddressBook book(options_, dns_.resolver(), &clock_);
  std::vector<std::string> picked;
  for (int i = 0; i < 6; ++i) picked.push_back(*PickSync(book, "pods.test"));
  // Sorted, distinct, in turn.
  EXPECT_THAT(picked,
              ElementsAre("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.3"));
  EXPECT_EQ(dns_.asked(), 1);  // resolved once: the addresses are fresh
}

TEST_F(AddressBookTest, PicksWaitingForAFirstResolutionShareIt) {
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  dns_.Hold(true);
  AddressBook book(options_, dns_.resolver(), &clock_);
  absl::Mutex mu;
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    book.Pick("pods.test", 80, {}, [&](absl::StatusOr<std::string> a) {
      absl::MutexLock lock(&mu);
      got.push_back(a.ok() ? *a : a.status().ToString());
    });
  }
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(got.empty());  // nothing known yet: they wait, the caller does not
  }
  dns_.Hold(false);
  auto four = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return got.size() == 4; };
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&four), absl::Seconds(20)));
  EXPECT_THAT(got, UnorderedElementsAre("10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"));
  EXPECT_EQ(dns_.asked(), 1);
}

TEST_F(AddressBookTest, ANameInUseIsResolvedAgainWithoutDelayingCalls) {
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.1"});
  AddressBook book(options_, dns_.resolver(), &clock_);
  EXPECT_EQ(*PickSync(book, "pods.test"), "10.0.0.1");
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.1", "10.0.0.2"});  // a pod came
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(*PickSync(book, "pods.test"), "10.0.0.1");
  EXPECT_EQ(dns_.asked(), 1);  // not due yet
  clock_.Advance(absl::Seconds(1));
  dns_.Hold(true);
  // Due: this call takes what is known at once, and the refresh runs meanwhile.
  EXPECT_EQ(*PickSync(book, "pods.test"), "10.0.0.1");
  dns_.Hold(false);
  AwaitResolutions(book, 2);
  std::set<std::string> seen;
  for (int i = 0; i < 4; ++i) seen.insert(*PickSync(book, "pods.test"));
  EXPECT_THAT(seen, UnorderedElementsAre("10.0.0.1", "10.0.0.2"));
  // A pod went: its address is not given any more.
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.2"});
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(PickSync(book, "pods.test").ok());  // due: starts a refresh
  AwaitResolutions(book, 3);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(*PickSync(book, "pods.test"), "10.0.0.2");
}

TEST_F(AddressBookTest, AFailureThatMayPassKeepsTheAddressesANameWithoutAddressDropsThem) {
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.1"});
  AddressBook book(options_, dns_.resolver(), &clock_);
  EXPECT_EQ(*PickSync(book, "pods.test"), "10.0.0.1");
  dns_.Set("pods.test", absl::UnavailableError("DNS timed out"));
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(PickSync(book, "pods.test").ok());  // due: starts a refresh
  AwaitResolutions(book, 2);
  EXPECT_EQ(*PickSync(book, "pods.test"), "10.0.0.1");  // kept
  dns_.Set("pods.test", absl::NotFoundError("cannot resolve pods.test: Name or service not known"));
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(PickSync(book, "pods.test").ok());  // due: starts a refresh
  AwaitResolutions(book, 3);
  absl::StatusOr<std::string> gone = PickSync(book, "pods.test");
  EXPECT_TRUE(absl::IsNotFound(gone.status())) << gone.status();
  EXPECT_EQ(gone.status().message(), "cannot resolve pods.test: Name or service not known");
}

TEST_F(AddressBookTest, ANameThatDoesNotResolveFailsCallsForAWhileThenIsAskedAgain) {
  AddressBook book(options_, dns_.resolver(), &clock_);
  EXPECT_TRUE(absl::IsNotFound(PickSync(book, "nowhere.test").status()));
  EXPECT_TRUE(absl::IsNotFound(PickSync(book, "nowhere.test").status()));
  EXPECT_EQ(dns_.asked(), 1);  // remembered for failure_ttl
  dns_.Set("nowhere.test", std::vector<std::string>{"10.0.0.9"});
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*PickSync(book, "nowhere.test"), "10.0.0.9");
  EXPECT_EQ(dns_.asked(), 2);
}

TEST_F(AddressBookTest, AnAddressThatRefusedIsPassedOverWhileOthersRemain) {
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"});
  AddressBook book(options_, dns_.resolver(), &clock_);
  EXPECT_EQ(*PickSync(book, "pods.test"), "10.0.0.1");
  book.MarkDown("pods.test", 80, "10.0.0.2");
  book.MarkDown("pods.test", 8080, "10.0.0.3");  // another port: another endpoint
  for (int i = 0; i < 4; ++i) EXPECT_NE(*PickSync(book, "pods.test"), "10.0.0.2");
  clock_.Advance(absl::Seconds(1));
  std::set<std::string> seen;
  for (int i = 0; i < 3; ++i) seen.insert(*PickSync(book, "pods.test"));
  EXPECT_EQ(seen.size(), 3u);  // back in turn
  // All down: still given (one may be back), none twice to one call.
  for (const char* a : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) book.MarkDown("pods.test", 80, a);
  absl::StatusOr<std::string> first = PickSync(book, "pods.test");
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::string> second = PickSync(book, "pods.test", {*first});
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*second, *first);
  absl::StatusOr<std::string> none =
      PickSync(book, "pods.test", {"10.0.0.1", "10.0.0.2", "10.0.0.3"});
  EXPECT_TRUE(absl::IsOutOfRange(none.status())) << none.status();
}

// What an allow-list decided about a name holds for every address given for it: only that
// name's own, never one of another name (nor of the same name on another port, which is
// resolved and passed over on its own).
TEST_F(AddressBookTest, ANameIsOnlyEverGivenItsOwnAddresses) {
  dns_.Set("a.test", std::vector<std::string>{"10.0.0.1"});
  dns_.Set("b.test", std::vector<std::string>{"10.0.0.2", "fd00::2"});
  AddressBook book(options_, dns_.resolver(), &clock_);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(*PickSync(book, "a.test"), "10.0.0.1");
    EXPECT_NE(*PickSync(book, "b.test"), "10.0.0.1");
  }
  book.MarkDown("a.test", 80, "10.0.0.2");  // not a.test's: ignored
  EXPECT_EQ(*PickSync(book, "a.test"), "10.0.0.1");
  EXPECT_TRUE(absl::IsOutOfRange(PickSync(book, "a.test", {"10.0.0.1"}).status()));
}

TEST_F(AddressBookTest, TriedAddressesAreSkipped) {
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  AddressBook book(options_, dns_.resolver(), &clock_);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*PickSync(book, "pods.test", {"10.0.0.1"}), "10.0.0.2");
}

TEST_F(AddressBookTest, IdleNamesAreForgottenAndTheBookIsBounded) {
  options_.max_names = 3;
  options_.idle_timeout = absl::Minutes(1);
  for (int i = 0; i < 5; ++i) {
    dns_.Set("n" + std::to_string(i) + ".test", std::vector<std::string>{"10.0.0.1"});
  }
  AddressBook book(options_, dns_.resolver(), &clock_);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(PickSync(book, "n" + std::to_string(i) + ".test").ok());
  }
  EXPECT_EQ(book.name_count(), 3u);  // the least recently used went
  clock_.Advance(absl::Minutes(2));
  ASSERT_TRUE(PickSync(book, "n0.test").ok());
  EXPECT_EQ(book.name_count(), 1u);  // the idle ones went
}

TEST_F(AddressBookTest, ShutdownFailsWaitingPicksAndLaterOnes) {
  dns_.Set("pods.test", std::vector<std::string>{"10.0.0.1"});
  dns_.Hold(true);
  AddressBook book(options_, dns_.resolver(), &clock_);
  absl::Notification done;
  absl::Status status;
  book.Pick("pods.test", 80, {}, [&](const absl::StatusOr<std::string>& a) {
    status = a.status();
    done.Notify();
  });
  for (int i = 0; i < 20000 && dns_.asked() == 0; ++i) absl::SleepFor(absl::Milliseconds(1));
  std::thread shutdown([&] { book.Shutdown(); });
  done.WaitForNotification();  // at once, while the resolution still hangs
  EXPECT_TRUE(absl::IsCancelled(status)) << status;
  dns_.Hold(false);
  shutdown.join();
  EXPECT_TRUE(absl::IsCancelled(PickSync(book, "pods.test").status()));
}

TEST(AddressBookSystemTest, ResolvesNamesAndLiteralsWithGetaddrinfo) {
  absl::StatusOr<std::vector<std::string>> local = AddressBook::ResolveSystem("localhost");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_THAT(*local, ::testing::Contains("127.0.0.1"));
}

}  // namespace
}  // namespace dtm
