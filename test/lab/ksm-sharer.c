/* Fills anonymous memory with identical pages and offers it to KSM, so the lab can
 * show the kernel refusing merge_across_nodes while pages are shared. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
  size_t size = 32u << 20;
  char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return 1;
#ifdef MADV_NOHUGEPAGE
  /* Small pages from the start: KSM need not split a transparent huge page first. */
  madvise(memory, size, MADV_NOHUGEPAGE);
#endif
  memset(memory, 0x5a, size);
  if (madvise(memory, size, MADV_MERGEABLE) != 0) return 2;
  for (;;) pause();
}
