// The address dump and watch on loopback (interface 1), read-only: what this namespace has is
// left alone. Addresses added to a TAP device under a watch are in test/netns/stable-mac.test.ts.
#include "system/link_addresses.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>

#include <cstring>

#include "test.h"

using namespace ovl;

TEST(link_addresses_of_loopback_include_127_0_0_1) {
  bool found = false;
  for (const LinkAddress& address : link_addresses(1)) {
    if (address.family == AF_INET && address.literal() == "127.0.0.1") found = true;
    CHECK(address.family == AF_INET || address.family == AF_INET6);
  }
  CHECK(found);
}

TEST(address_watch_reports_nothing_that_was_there_at_open) {
  AddressWatch watch = AddressWatch::open("", 1);
  CHECK(watch.fd() >= 0);
  CHECK(watch.take_added().empty());
  CHECK(watch.take_added().empty());
}

TEST(link_address_usable_and_same_address) {
  LinkAddress v6;
  v6.family = AF_INET6;
  ::inet_pton(AF_INET6, "fd00::1", v6.bytes);
  CHECK(v6.usable());
  CHECK(v6.literal() == "fd00::1");
  for (const uint32_t flag : {uint32_t{IFA_F_TENTATIVE}, uint32_t{IFA_F_DADFAILED}, uint32_t{IFA_F_OPTIMISTIC}}) {
    LinkAddress busy = v6;
    busy.flags = flag;
    CHECK(!busy.usable());
    CHECK(busy.same_address(v6));
  }
  LinkAddress v4;
  v4.family = AF_INET;
  ::inet_pton(AF_INET, "198.19.0.1", v4.bytes);
  v4.flags = IFA_F_TENTATIVE;  // IPv4 has no duplicate address detection of its own
  CHECK(v4.usable());
  CHECK(!v4.same_address(v6));
  CHECK(v4.literal() == "198.19.0.1");
}
