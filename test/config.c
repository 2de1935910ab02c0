// SPDX-License-Identifier: MIT
/*
 * Bad configurations fail at open with their own code and a message that
 * names the problem; bad environment values too; sizes parse; every error
 * code has its own explanation; API misuse is refused.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static upager_config_t base(void)
{
	upager_config_t cfg;

	upager_config_init(&cfg);
	cfg.ram_bytes = 1 << 20;
	return cfg;
}

/* Opening must fail with code, and the message must mention needle. */
static void expect_open_fails(upager_config_t cfg, int code, const char *needle)
{
	upager_t *p = NULL;
	int err = upager_open(&cfg, &p);

	if (err != code)
		FAILF("upager_open returned %d (%s: %s), expected %d (%s)", err,
		      upager_strerror(err), upager_last_error(), code, upager_strerror(code));
	CHECK(p == NULL);
	if (!strstr(upager_last_error(), needle))
		FAILF("message '%s' does not mention '%s'", upager_last_error(), needle);
}

static void test_sizes(void)
{
	uint64_t v;

	CHECK_OK(upager_parse_size("4096", &v));
	CHECK_EQ(v, 4096);
	CHECK_OK(upager_parse_size("64K", &v));
	CHECK_EQ(v, 65536);
	CHECK_OK(upager_parse_size("512m", &v));
	CHECK_EQ(v, 512ULL << 20);
	CHECK_OK(upager_parse_size("2GiB", &v));
	CHECK_EQ(v, 2ULL << 30);
	CHECK_OK(upager_parse_size("1TB", &v));
	CHECK_EQ(v, 1ULL << 40);
	CHECK_ERR(upager_parse_size("", &v), -EINVAL);
	CHECK_ERR(upager_parse_size("abc", &v), -EINVAL);
	CHECK_ERR(upager_parse_size("12Q", &v), -EINVAL);
	CHECK_ERR(upager_parse_size("-5", &v), -EINVAL);
	CHECK_ERR(upager_parse_size("5M junk", &v), -EINVAL);
	CHECK_ERR(upager_parse_size("99999999999999999999", &v), -EINVAL);
	CHECK_ERR(upager_parse_size("17000000T", &v), -EINVAL);
}

static void test_bad_config(void)
{
	upager_config_t c;

	c = base();
	c.page_size = 3000;
	expect_open_fails(c, UPAGER_EPAGESIZE, "3000");
	c = base();
	c.page_size = 2048;
	expect_open_fails(c, UPAGER_EPAGESIZE, "2048");
	c = base();
	c.page_size = 4u << 20;
	c.ram_bytes = 1ULL << 30;
	expect_open_fails(c, UPAGER_EPAGESIZE, "4194304");
	c = base();
	c.ram_bytes = 15 * 4096;
	expect_open_fails(c, UPAGER_EBUDGET, "at least 16");
	c = base();
	c.ram_bytes = 1 << 20;
	c.page_size = 128 << 10; /* 8 pages of 128 KiB */
	expect_open_fails(c, UPAGER_EBUDGET, "8 pages");
	c = base();
	c.swap_path = "/nonexistent-dir/deeper/swap";
	expect_open_fails(c, UPAGER_ESWAPPATH, "/nonexistent-dir/deeper/swap");
	c = base();
	c.swap_path = "/proc/version"; /* exists, not writable */
	expect_open_fails(c, UPAGER_ESWAPPATH, "/proc/version");
	c = base();
	c.policy = "no-such-policy";
	expect_open_fails(c, UPAGER_EPOLICY, "no-such-policy");
	c = base();
	c.policy = "clock:bogus=1";
	expect_open_fails(c, UPAGER_EPOLICY, "bogus");
	c = base();
	c.backend = "floppy";
	expect_open_fails(c, UPAGER_EBACKEND, "floppy");
	c = base();
	c.mode = (upager_mode_t)7;
	expect_open_fails(c, UPAGER_EMODE, "7");
	c = base();
	c.evict_batch = 1025;
	expect_open_fails(c, UPAGER_ECONFIG, "evict_batch");
	c = base();
	c.free_low = 10;
	c.free_high = 5;
	expect_open_fails(c, UPAGER_ECONFIG, "free_low");
}

static void test_env(void)
{
	upager_config_t c;

	setenv("UPAGER_RAM", "64M", 1);
	setenv("UPAGER_PAGE_SIZE", "64K", 1);
	setenv("UPAGER_POLICY", "clock", 1);
	setenv("UPAGER_MODE", "fast", 1);
	setenv("UPAGER_SWAP_MAX", "1G", 1);
	upager_config_init(&c);
	CHECK_EQ(c.ram_bytes, 64 << 20);
	CHECK_EQ(c.page_size, 65536);
	CHECK(!strcmp(c.policy, "clock"));
	CHECK_EQ(c.mode, UPAGER_MODE_FAST);
	CHECK_EQ(c.swap_max, 1ULL << 30);
	CHECK_EQ(c.env_error[0], '\0');

	setenv("UPAGER_RAM", "lots", 1);
	upager_config_init(&c);
	CHECK(strstr(c.env_error, "UPAGER_RAM"));
	expect_open_fails(c, UPAGER_EENV, "UPAGER_RAM='lots'");
	unsetenv("UPAGER_RAM");

	setenv("UPAGER_MODE", "turbo", 1);
	upager_config_init(&c);
	expect_open_fails(c, UPAGER_EENV, "UPAGER_MODE");
	unsetenv("UPAGER_MODE");

	setenv("UPAGER_THREADS", "-3", 1);
	upager_config_init(&c);
	expect_open_fails(c, UPAGER_EENV, "UPAGER_THREADS");
	unsetenv("UPAGER_THREADS");

	setenv("UPAGER_DIRECT_IO", "maybe", 1);
	upager_config_init(&c);
	expect_open_fails(c, UPAGER_EENV, "UPAGER_DIRECT_IO");
	unsetenv("UPAGER_DIRECT_IO");

	/* A bad page size from the environment is caught as a page size. */
	setenv("UPAGER_PAGE_SIZE", "5000", 1);
	upager_config_init(&c);
	c.ram_bytes = 1 << 20;
	expect_open_fails(c, UPAGER_EPAGESIZE, "5000");
	unsetenv("UPAGER_PAGE_SIZE");
	unsetenv("UPAGER_POLICY");
	unsetenv("UPAGER_SWAP_MAX");
}

static void test_strerror(void)
{
	static const int codes[] = { UPAGER_EPAGESIZE, UPAGER_EBUDGET,   UPAGER_ESWAPPATH,
				     UPAGER_EPOLICY,   UPAGER_EBACKEND,  UPAGER_EMODE,
				     UPAGER_EENV,      UPAGER_ESWAPFULL, UPAGER_ENOREGION,
				     UPAGER_ECONFIG,   UPAGER_EMAPCOUNT, UPAGER_EPOISON };
	const char *unknown = upager_strerror(-99999);

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = upager_strerror(codes[i]);
		CHECK(s && *s && strcmp(s, unknown));
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(s, upager_strerror(codes[j])));
	}
	CHECK(strstr(upager_strerror(-ENOENT), "No such file"));
}

static void test_misuse(void)
{
	upager_config_t c = base();
	upager_t *p;
	void *a;
	int local;

	CHECK_ERR(upager_open(&c, NULL), -EINVAL);
	CHECK_OK(upager_open(&c, &p));
	CHECK_ERR(upager_map(p, 0, 0, &a), -EINVAL);
	CHECK_ERR(upager_map(p, 4096, 0x40, &a), -EINVAL);
	CHECK_ERR(upager_unmap(p, &local), UPAGER_ENOREGION);
	CHECK_OK(upager_map(p, 10000, 0, &a));
	CHECK_EQ((uintptr_t)a % 4096, 0);
	CHECK_ERR(upager_unmap(p, (char *)a + 4096), UPAGER_ENOREGION);
	CHECK_ERR(upager_touch(p, &local, sizeof(local), 1), UPAGER_ENOREGION);
	CHECK_ERR(upager_touch(p, a, 1 << 20, 1), UPAGER_ENOREGION); /* runs past the end */
	CHECK_OK(upager_touch(p, a, 12288, 1));                      /* rounded up to 3 pages */
	CHECK_OK(upager_unmap(p, a));
	CHECK_ERR(upager_unmap(p, a), UPAGER_ENOREGION);
	CHECK_OK(upager_close(p));

	/* Defaults (NULL configuration) open too. */
	CHECK_OK(upager_open(NULL, &p));
	CHECK_OK(upager_close(p));
}

static void test_swap_paths(void)
{
	char dir[] = "/tmp/upager-test-XXXXXX";
	char file[300];
	upager_config_t c = base();
	upager_t *p;
	struct stat st;

	CHECK(mkdtemp(dir));
	/* A directory: an unnamed file in it, nothing left behind. */
	c.swap_path = dir;
	CHECK_OK(upager_open(&c, &p));
	CHECK_OK(upager_close(p));
	CHECK_EQ(rmdir(dir), 0); /* would fail if a file was left */
	strcpy(dir, "/tmp/upager-test-XXXXXX");
	CHECK(mkdtemp(dir));
	/* A named file: created with mode 0600, emptied at close. */
	snprintf(file, sizeof(file), "%s/swapfile", dir);
	c.swap_path = file;
	CHECK_OK(upager_open(&c, &p));
	CHECK_EQ(stat(file, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	char *a;
	CHECK_OK(upager_map(p, 8 << 20, 0, (void **)&a));
	for (size_t i = 0; i < (8u << 20); i += 4096)
		a[i] = 1;
	CHECK_OK(upager_close(p));
	CHECK_EQ(stat(file, &st), 0);
	CHECK_EQ(st.st_size, 0);
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	test_sizes();
	test_bad_config();
	test_env();
	test_strerror();
	test_misuse();
	test_swap_paths();
	printf("config: all checks passed\n");
	return 0;
}
