/* The shared part of the compiled rowpack (``_rowpack.c``, ``_rowpack_read.c``): a layout
 * ("spec", documented in ``_rowpack.c``), one cell of a message, and the readers that check a
 * message against a layout. */
#ifndef TICKDB_ROWPACK_H
#define TICKDB_ROWPACK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>


#define HEADER_WORDS 8
#define MAX_FIELDS 4096
#define ALIGNED_AND_SMALL 0xC000000000000007ULL
#define WIDTH_UTF8 0
#define WIDTH_BINARY (-1)

typedef struct {
    int64_t meta_size, n_fields, n_buffers, w_body, w_rows, w_nodes, w_buffers, n_fixed;
    const unsigned char *widths, *fixed_idx, *fixed_val;
} Spec;

/* One column of one message: where its value is, and whether it is null. */
typedef struct {
    const unsigned char *value;
    int64_t size;
    int null;
} Cell;

static inline uint64_t ld64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline int32_t ld32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void st64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static inline int64_t width_of(const Spec *s, int64_t f) { return (int64_t)ld64(s->widths + 8 * f); }

static inline int64_t pad8(int64_t n) { return (n + 7) & ~(int64_t)7; }

/* ``read_message``'s verdicts. */
enum { REFUSED = 0, FITS = 1, OTHER_LAYOUT = 2 };
/* ``read_rows``'s refusals (else it returns the number of rows). */
enum { ROWS_REFUSED = -1, ROWS_OTHER_LAYOUT = -2 };

int parse_spec(const unsigned char *p, Py_ssize_t len, Spec *s);
int read_message(const Spec *s, const unsigned char *m, int64_t len, Cell *cells);
int64_t read_rows(const Spec *s, const unsigned char *m, int64_t len);
void read_cells(const Spec *s, const unsigned char *m, int64_t rows, Cell *cells);

#endif
