#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "upager.h"
int main(void)
{
	upager_config_t cfg;
	upager_t *p;
	char *a;
	upager_config_init(&cfg);
	cfg.ram_bytes = 1 << 20;
	int err = upager_open(&cfg, &p);
	if (err) { fprintf(stderr, "open: %s: %s\n", upager_strerror(err), upager_last_error()); return 1; }
	size_t len = 16 << 20;
	err = upager_map(p, len, 0, (void **)&a);
	if (err) { fprintf(stderr, "map: %s: %s\n", upager_strerror(err), upager_last_error()); return 1; }
	for (size_t i = 0; i < len; i += 4096) a[i] = (char)(i >> 12);
	for (size_t i = 0; i < len; i += 4096) if (a[i] != (char)(i >> 12)) { fprintf(stderr, "bad at %zu\n", i); return 1; }
	upager_stats_print(p, 2);
	upager_close(p);
	return 0;
}
