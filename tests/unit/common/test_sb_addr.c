/* Unit tests of sb_addr: which hosts and listen addresses count as loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sb_addr.h"

static void test_sb_addr_is_loopback_hosts(void **state)
{
    assert_true(sb_addr_is_loopback("127.0.0.1"));
    assert_true(sb_addr_is_loopback("127.255.3.4"));
    assert_true(sb_addr_is_loopback("::1"));
    assert_true(sb_addr_is_loopback("0:0:0:0:0:0:0:1"));
    assert_true(sb_addr_is_loopback("::ffff:127.0.0.2"));
    assert_true(sb_addr_is_loopback("localhost"));
    assert_true(sb_addr_is_loopback("LocalHost."));
    assert_false(sb_addr_is_loopback("0.0.0.0"));
    assert_false(sb_addr_is_loopback("::"));
    assert_false(sb_addr_is_loopback("128.0.0.1"));
    assert_false(sb_addr_is_loopback("10.0.0.1"));
    assert_false(sb_addr_is_loopback("::ffff:10.0.0.1"));
    assert_false(sb_addr_is_loopback("localhost.example.com"));
    assert_false(sb_addr_is_loopback("127.0.0.1.nip.io"));
    assert_false(sb_addr_is_loopback("localhostx"));
    assert_false(sb_addr_is_loopback("cp.default.svc"));
    assert_false(sb_addr_is_loopback(""));
    assert_false(sb_addr_is_loopback(NULL));
}

static void test_sb_addr_is_local_hostports(void **state)
{
    assert_true(sb_addr_is_local("127.0.0.1:50051"));
    assert_true(sb_addr_is_local("localhost:50051"));
    assert_true(sb_addr_is_local("[::1]:50051"));
    assert_true(sb_addr_is_local("ipv4:127.0.0.1:1"));
    assert_true(sb_addr_is_local("ipv6:[::1]:1"));
    assert_true(sb_addr_is_local("dns:localhost:1"));
    assert_true(sb_addr_is_local("dns:///localhost:1"));
    assert_true(sb_addr_is_local("unix:/run/sb.sock"));
    assert_true(sb_addr_is_local("unix-abstract:sb"));
    assert_true(sb_addr_is_local("127.0.0.1"));
    assert_true(sb_addr_is_local("::1"));
    assert_false(sb_addr_is_local("0.0.0.0:50051"));
    assert_false(sb_addr_is_local("[::]:50051"));
    assert_false(sb_addr_is_local(":50051"));
    assert_false(sb_addr_is_local("10.1.2.3:50051"));
    assert_false(sb_addr_is_local("cp.example.com:50051"));
    assert_false(sb_addr_is_local("[::1:50051"));
    assert_false(sb_addr_is_local("ipv4:0.0.0.0:1"));
    assert_false(sb_addr_is_local(""));
    assert_false(sb_addr_is_local(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_addr_is_loopback_hosts),
        cmocka_unit_test(test_sb_addr_is_local_hostports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
