/* Reading one-row and batch messages against a layout, as Arrow's full validation would
 * accept them: the checks both entry points of ``_rowpack.c`` (and its packer) start from. */
#include "_rowpack.h"

/* Fills ``s`` from a spec's bytes; 0 (with a Python error set) if they do not hold one. */
int parse_spec(const unsigned char *p, Py_ssize_t len, Spec *s) {
    if (len < 8 * HEADER_WORDS) goto bad;
    int64_t h[HEADER_WORDS];
    for (int i = 0; i < HEADER_WORDS; i++) h[i] = (int64_t)ld64(p + 8 * i);
    s->meta_size = h[0], s->n_fields = h[1], s->n_buffers = h[2], s->w_body = h[3];
    s->w_rows = h[4], s->w_nodes = h[5], s->w_buffers = h[6], s->n_fixed = h[7];
    int64_t words = 1 + s->meta_size / 8;
    if (s->meta_size <= 0 || s->meta_size % 8 || s->meta_size > (1 << 24)) goto bad;
    if (s->n_fields < 0 || s->n_fields > MAX_FIELDS || s->n_fixed < 0 || s->n_fixed > words)
        goto bad;
    if (len != 8 * (HEADER_WORDS + s->n_fields + 2 * s->n_fixed)) goto bad;
    s->widths = p + 8 * HEADER_WORDS;
    s->fixed_idx = s->widths + 8 * s->n_fields;
    s->fixed_val = s->fixed_idx + 8 * s->n_fixed;
    int64_t buffers = 0;
    for (int64_t f = 0; f < s->n_fields; f++) {
        int64_t w = width_of(s, f);
        if (w < WIDTH_BINARY || w > 1024) goto bad;
        buffers += w > 0 ? 2 : 3;
    }
    if (buffers != s->n_buffers) goto bad;
    if (s->w_body < 1 || s->w_body >= words || s->w_rows < 1 || s->w_rows >= words) goto bad;
    if (s->w_nodes < 1 || s->w_nodes + 2 * s->n_fields > words) goto bad;
    if (s->w_buffers < 1 || s->w_buffers + 2 * s->n_buffers > words) goto bad;
    for (int64_t i = 0; i < s->n_fixed; i++) {
        int64_t at = (int64_t)ld64(s->fixed_idx + 8 * i);
        if (at < 0 || at >= words) goto bad;
    }
    return 1;
bad:
    PyErr_SetString(PyExc_ValueError, "not a row layout");
    return 0;
}

/* Strict UTF-8, as Arrow validates it: no overlong forms, no surrogates, nothing past
 * U+10FFFF. */
static int valid_utf8(const unsigned char *s, int64_t n) {
    int64_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int64_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07;
        else return 0;
        if (i + need >= n) return 0; /* runs past the end */
        for (int64_t k = 1; k <= need; k++) {
            unsigned char d = s[i + k];
            if ((d & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        i += need + 1;
    }
    return 1;
}

/* Whether ``m`` has the spec's shape: its padding, its fixed metadata words, a body length
 * that is the rest of it. */
enum { SHAPE_FITS, SHAPE_REFUSED, SHAPE_OTHER };

static int check_shape(const Spec *s, const unsigned char *m, int64_t len) {
    int64_t head = 8 + s->meta_size;
    if (len % 8) return SHAPE_REFUSED; /* IPC messages are padded to 8 bytes */
    if (len < head) return SHAPE_OTHER;
    for (int64_t i = 0; i < s->n_fixed; i++) {
        int64_t at = (int64_t)ld64(s->fixed_idx + 8 * i);
        if (ld64(m + 8 * at) != ld64(s->fixed_val + 8 * i)) return SHAPE_OTHER;
    }
    return (int64_t)ld64(m + 8 * s->w_body) == len - head ? SHAPE_FITS : SHAPE_REFUSED;
}

/* The offsets and sizes of ``count`` buffers from the ``b``-th; 0 when one is unaligned,
 * absurdly large or outside the body. */
static int read_buffers(const Spec *s, const unsigned char *m, int64_t b, int64_t count,
                        uint64_t body_len, uint64_t *off, uint64_t *size) {
    for (int64_t k = 0; k < count; k++) {
        off[k] = ld64(m + 8 * (s->w_buffers + 2 * (b + k)));
        size[k] = ld64(m + 8 * (s->w_buffers + 2 * (b + k) + 1));
        if ((off[k] & ALIGNED_AND_SMALL) || (size[k] >> 62)) return 0;
        if (off[k] + size[k] > body_len) return 0;
    }
    return 1;
}

/* FITS when ``m`` is exactly one one-row batch message of the spec's shape whose contents
 * Arrow's full validation accepts, and then fills ``cells`` (one per field); OTHER_LAYOUT
 * when its metadata is not the spec's shape at all (another writer's, perhaps). */
int read_message(const Spec *s, const unsigned char *m, int64_t len, Cell *cells) {
    int shape = check_shape(s, m, len);
    if (shape != SHAPE_FITS) return shape == SHAPE_OTHER ? OTHER_LAYOUT : REFUSED;
    int64_t head = 8 + s->meta_size, body_len = len - head;
    if ((int64_t)ld64(m + 8 * s->w_rows) != 1) return REFUSED;
    const unsigned char *body = m + head;
    int64_t b = 0;
    for (int64_t f = 0; f < s->n_fields; f++) {
        uint64_t length = ld64(m + 8 * (s->w_nodes + 2 * f));
        uint64_t nulls = ld64(m + 8 * (s->w_nodes + 2 * f + 1));
        if (length != 1 || nulls > 1) return REFUSED;
        int64_t width = width_of(s, f);
        int64_t count = width > 0 ? 2 : 3;
        uint64_t off[3], size[3];
        if (!read_buffers(s, m, b, count, (uint64_t)body_len, off, size)) return REFUSED;
        b += count;
        Cell *cell = &cells[f];
        cell->null = (int)nulls;
        if (nulls && (size[0] == 0 || (body[off[0]] & 1))) return REFUSED; /* the bitmap says null */
        if (width > 0) {
            if (size[1] < (uint64_t)width) return REFUSED;
            cell->value = body + off[1];
            cell->size = width;
            continue;
        }
        if (size[1] < 8) return REFUSED;
        int32_t first = ld32(body + off[1]), last = ld32(body + off[1] + 4);
        if (first < 0 || last < first || (uint64_t)last > size[2]) return REFUSED;
        cell->value = body + off[2] + first;
        cell->size = (int64_t)last - first;
        /* Arrow checks the UTF-8 of valid values only; a null one is never read. */
        if (width == WIDTH_UTF8 && !nulls && !valid_utf8(cell->value, cell->size)) return REFUSED;
    }
    return FITS;
}

/* Whether ``n`` bytes are all ASCII: every value of a string column at once, in the common
 * case, before checking value by value. */
static int all_ascii(const unsigned char *s, int64_t n) {
    uint64_t high = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) high |= ld64(s + i);
    for (; i < n; i++) high |= s[i];
    return (high & 0x8080808080808080ULL) == 0;
}

/* How many of the first ``rows`` bits of a validity bitmap are set (valid rows). */
static int64_t valid_rows(const unsigned char *bits, int64_t rows) {
    int64_t set = 0, i = 0;
    for (; i + 64 <= rows; i += 64) set += __builtin_popcountll(ld64(bits + i / 8));
    for (; i < rows; i++) set += (bits[i / 8] >> (i % 8)) & 1;
    return set;
}

/* A batch message of any number of rows, as ``publish`` sends a table: the rows when it is
 * exactly one batch message of the spec's shape whose contents Arrow's full validation
 * accepts (every field as long as the batch, buffers inside the body and long enough,
 * string offsets ascending inside their data, valid UTF-8 in every valid value); ROWS_REFUSED
 * or ROWS_OTHER_LAYOUT otherwise. Stricter than Arrow where that is simpler (buffers
 * aligned, a null count that matches its bitmap): what it refuses goes to pyarrow's reader,
 * which then decides. */
int64_t read_rows(const Spec *s, const unsigned char *m, int64_t len) {
    int shape = check_shape(s, m, len);
    if (shape != SHAPE_FITS) return shape == SHAPE_OTHER ? ROWS_OTHER_LAYOUT : ROWS_REFUSED;
    int64_t head = 8 + s->meta_size, body_len = len - head;
    int64_t rows = (int64_t)ld64(m + 8 * s->w_rows);
    if (rows < 0 || rows > INT32_MAX - 1) return ROWS_REFUSED;
    const unsigned char *body = m + head;
    int64_t b = 0;
    for (int64_t f = 0; f < s->n_fields; f++) {
        uint64_t length = ld64(m + 8 * (s->w_nodes + 2 * f));
        uint64_t nulls = ld64(m + 8 * (s->w_nodes + 2 * f + 1));
        if (length != (uint64_t)rows || nulls > (uint64_t)rows) return ROWS_REFUSED;
        int64_t width = width_of(s, f);
        int64_t count = width > 0 ? 2 : 3;
        uint64_t off[3], size[3];
        if (!read_buffers(s, m, b, count, (uint64_t)body_len, off, size)) return ROWS_REFUSED;
        b += count;
        /* With no nulls Arrow ignores the bitmap; with some it must be there and agree. */
        const unsigned char *validity = nulls ? body + off[0] : NULL;
        if (nulls && (size[0] < (uint64_t)(rows + 7) / 8 ||
                      rows - valid_rows(validity, rows) != (int64_t)nulls))
            return ROWS_REFUSED;
        if (width > 0) {
            if (size[1] < (uint64_t)(rows * width)) return ROWS_REFUSED;
            continue;
        }
        if (size[1] < (uint64_t)(4 * (rows + 1))) return ROWS_REFUSED;
        const unsigned char *offsets = body + off[1];
        int32_t first = ld32(offsets), last = first;
        if (first < 0) return ROWS_REFUSED;
        for (int64_t r = 1; r <= rows; r++) {
            int32_t next = ld32(offsets + 4 * r);
            if (next < last) return ROWS_REFUSED;
            last = next;
        }
        if ((uint64_t)last > size[2]) return ROWS_REFUSED;
        const unsigned char *values = body + off[2];
        if (width != WIDTH_UTF8 || all_ascii(values + first, (int64_t)last - first)) continue;
        /* Arrow checks the UTF-8 of valid values only; a null one is never read. */
        for (int64_t r = 0; r < rows; r++) {
            if (validity && !((validity[r / 8] >> (r % 8)) & 1)) continue;
            int32_t from = ld32(offsets + 4 * r), to = ld32(offsets + 4 * (r + 1));
            if (!valid_utf8(values + from, (int64_t)to - from)) return ROWS_REFUSED;
        }
    }
    return rows;
}

/* The cells of a message ``read_rows`` accepted with ``rows`` rows: row r's field f at
 * ``cells[r * n_fields + f]``; null when its validity bit is clear (with nulls only). */
void read_cells(const Spec *s, const unsigned char *m, int64_t rows, Cell *cells) {
    const unsigned char *body = m + 8 + s->meta_size;
    int64_t b = 0;
    for (int64_t f = 0; f < s->n_fields; f++) {
        uint64_t nulls = ld64(m + 8 * (s->w_nodes + 2 * f + 1));
        int64_t width = width_of(s, f);
        const unsigned char *validity = body + ld64(m + 8 * (s->w_buffers + 2 * b));
        const unsigned char *data = body + ld64(m + 8 * (s->w_buffers + 2 * (b + 1)));
        b += width > 0 ? 2 : 3;
        for (int64_t r = 0; r < rows; r++) {
            Cell *cell = &cells[r * s->n_fields + f];
            cell->null = nulls ? !((validity[r / 8] >> (r % 8)) & 1) : 0;
            if (width > 0) {
                cell->value = data + r * width;
                cell->size = width;
                continue;
            }
            const unsigned char *values = body + ld64(m + 8 * (s->w_buffers + 2 * (b - 1)));
            int32_t from = ld32(data + 4 * r), to = ld32(data + 4 * (r + 1));
            cell->value = values + from;
            cell->size = (int64_t)to - from;
        }
    }
}
