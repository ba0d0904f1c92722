/* One-row Arrow IPC batch messages: check them against a template, pack them into one batch
 * (a message of several rows too, checked as check_rows checks a table: see ``pack``).
 *
 * The compiled half of tickerplant/rowpack.py, which holds the same two functions in pure
 * Python and documents them; both must give the same answers and the same bytes (the tests
 * compare them). A layout ("spec") is built in Python from a message pyarrow has read: the
 * metadata words every message of that shape shares, and where its numbers are.
 *
 *   spec = i64 meta_size, n_fields, n_buffers, w_body_length, w_num_rows, w_nodes,
 *              w_buffers, n_fixed
 *          | n_fields x i64 width (> 0: fixed width in bytes; 0: utf8 string; -1: binary)
 *          | n_fixed x i64 word index | n_fixed x u64 word value
 *
 * Word i of a message is its bytes [8i, 8i + 8): word 0 is the continuation marker and the
 * metadata length, the metadata follows, then the body.
 *
 * A packed batch is byte for byte what pyarrow writes for the same rows: its own metadata
 * layout with the numbers filled in, each buffer padded to 8 bytes, a validity bitmap only
 * with nulls, and a null value's bytes carried as they came (Arrow never reads them).
 */
#include "_rowpack.h"

static PyObject *check(PyObject *self, PyObject *args) {
    Py_buffer spec_buf, msg;
    if (!PyArg_ParseTuple(args, "y*y*", &spec_buf, &msg)) return NULL;
    PyObject *result = NULL;
    Spec s;
    Cell stack[64];
    Cell *cells = stack;
    if (!parse_spec(spec_buf.buf, spec_buf.len, &s)) goto done;
    if (s.n_fields > 64 && !(cells = PyMem_Malloc(sizeof(Cell) * s.n_fields))) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyLong_FromLong(read_message(&s, msg.buf, msg.len, cells));
done:
    if (cells != stack) PyMem_Free(cells);
    PyBuffer_Release(&spec_buf);
    PyBuffer_Release(&msg);
    return result;
}

static PyObject *check_rows(PyObject *self, PyObject *args) {
    Py_buffer spec_buf, msg;
    if (!PyArg_ParseTuple(args, "y*y*", &spec_buf, &msg)) return NULL;
    PyObject *result = NULL;
    Spec s;
    if (parse_spec(spec_buf.buf, spec_buf.len, &s))
        result = PyLong_FromLongLong(read_rows(&s, msg.buf, msg.len));
    PyBuffer_Release(&spec_buf);
    PyBuffer_Release(&msg);
    return result;
}

/* The message words of the output layout with its numbers filled in. */
static void put_word(unsigned char *out, int64_t word, uint64_t v) { st64(out + 8 * word, v); }

static PyObject *pack(PyObject *self, PyObject *args) {
    Py_buffer out_buf, in_buf, prefix;
    PyObject *messages, *stamp_obj;
    if (!PyArg_ParseTuple(args, "y*y*y*OO", &out_buf, &in_buf, &prefix, &messages, &stamp_obj))
        return NULL;
    PyObject *result = NULL, *seq = NULL;
    Cell *cells = NULL;
    Py_buffer *views = NULL;
    int64_t *counts = NULL;
    Py_ssize_t k = 0, held = 0;
    Spec out, in;
    int stamped = stamp_obj != Py_None;
    uint64_t stamp = 0;
    if (!parse_spec(out_buf.buf, out_buf.len, &out) || !parse_spec(in_buf.buf, in_buf.len, &in))
        goto done;
    if (stamped) {
        int64_t v = PyLong_AsLongLong(stamp_obj);
        if (v == -1 && PyErr_Occurred()) goto done;
        stamp = (uint64_t)v;
    }
    /* The input has the output's columns, less the stamped first one. */
    int64_t skip = stamped ? 1 : 0;
    if (in.n_fields + skip != out.n_fields || (stamped && width_of(&out, 0) != 8)) goto shape;
    for (int64_t f = 0; f < in.n_fields; f++)
        if (width_of(&in, f) != width_of(&out, f + skip)) goto shape;
    if (!(seq = PySequence_Fast(messages, "messages must be a sequence"))) goto done;
    k = PySequence_Fast_GET_SIZE(seq);
    if (k == 0) goto shape;
    views = PyMem_Calloc((size_t)k, sizeof(Py_buffer));
    counts = PyMem_Malloc(sizeof(int64_t) * (size_t)k);
    if (!views || !counts) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < k; held++)
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, held), &views[held], PyBUF_SIMPLE))
            goto done;
    /* Each message's rows: one, as a row-at-a-time feed sends, or a run a writer sent as
     * one batch (a gateway's burst of requests, a venue's answers to them). */
    int64_t rows = 0;
    for (Py_ssize_t r = 0; r < k; r++) {
        int64_t n = read_rows(&in, views[r].buf, views[r].len);
        if (n < 1 || n > INT32_MAX - 1 - rows) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        counts[r] = n;
        rows += n;
    }
    if (!(cells = PyMem_Malloc(sizeof(Cell) * (size_t)(rows * (in.n_fields ? in.n_fields : 1))))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t r = 0, row = 0; r < k; row += counts[r], r++)
        read_cells(&in, views[r].buf, counts[r], &cells[row * in.n_fields]);
    k = rows; /* from here on, the output's rows */
    /* Sizes: per output column its validity bitmap (only with nulls), then its data, or
     * its offsets and values; each buffer padded to 8 bytes. */
    int64_t body = 0, bitmap = pad8((k + 7) / 8);
    for (int64_t f = 0; f < out.n_fields; f++) {
        int64_t width = width_of(&out, f), nulls = 0, total = 0;
        if (f >= skip)
            for (Py_ssize_t r = 0; r < k; r++) {
                Cell *c = &cells[r * in.n_fields + f - skip];
                nulls += c->null;
                total += c->size;
            }
        body += nulls ? bitmap : 0;
        if (width > 0) body += pad8(k * width);
        else {
            if (total >= INT32_MAX) { /* too long for one string column */
                result = Py_None;
                Py_INCREF(result);
                goto done;
            }
            body += pad8(4 * (k + 1)) + pad8(total);
        }
    }
    int64_t head = 8 + out.meta_size;
    int64_t size = prefix.len + head + body + 8;
    if (!(result = PyBytes_FromStringAndSize(NULL, size))) goto done;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(result);
    memcpy(o, prefix.buf, prefix.len);
    unsigned char *msg = o + prefix.len;
    memset(msg, 0, head + body);
    for (int64_t i = 0; i < out.n_fixed; i++)
        put_word(msg, (int64_t)ld64(out.fixed_idx + 8 * i), ld64(out.fixed_val + 8 * i));
    put_word(msg, out.w_body, (uint64_t)body);
    put_word(msg, out.w_rows, (uint64_t)k);
    unsigned char *b = msg + head;
    int64_t at = 0, buffer = 0;
    for (int64_t f = 0; f < out.n_fields; f++) {
        int64_t width = width_of(&out, f), nulls = 0;
        const Cell *col = f >= skip ? &cells[f - skip] : NULL;
        if (col)
            for (Py_ssize_t r = 0; r < k; r++) nulls += col[r * in.n_fields].null;
        put_word(msg, out.w_nodes + 2 * f, (uint64_t)k);
        put_word(msg, out.w_nodes + 2 * f + 1, (uint64_t)nulls);
        /* Validity: a bit per row, set when the row is valid; none without nulls. */
        put_word(msg, out.w_buffers + 2 * buffer, (uint64_t)at);
        put_word(msg, out.w_buffers + 2 * buffer + 1, nulls ? (uint64_t)((k + 7) / 8) : 0);
        buffer++;
        if (nulls) {
            for (Py_ssize_t r = 0; r < k; r++)
                if (!col[r * in.n_fields].null) b[at + r / 8] |= (unsigned char)(1u << (r % 8));
            at += bitmap;
        }
        if (width > 0) {
            put_word(msg, out.w_buffers + 2 * buffer, (uint64_t)at);
            put_word(msg, out.w_buffers + 2 * buffer + 1, (uint64_t)(k * width));
            buffer++;
            for (Py_ssize_t r = 0; r < k; r++) {
                unsigned char *dst = b + at + r * width;
                if (!col) st64(dst, stamp);
                else memcpy(dst, col[r * in.n_fields].value, width);
            }
            at += pad8(k * width);
            continue;
        }
        /* Offsets, then values. */
        int64_t offsets_at = at, total = 0;
        at += pad8(4 * (k + 1));
        for (Py_ssize_t r = 0; r < k; r++) {
            const Cell *c = &col[r * in.n_fields];
            int32_t o32 = (int32_t)total;
            memcpy(b + offsets_at + 4 * r, &o32, 4);
            memcpy(b + at + total, c->value, c->size);
            total += c->size;
        }
        int32_t end32 = (int32_t)total;
        memcpy(b + offsets_at + 4 * k, &end32, 4);
        put_word(msg, out.w_buffers + 2 * buffer, (uint64_t)offsets_at);
        put_word(msg, out.w_buffers + 2 * buffer + 1, (uint64_t)(4 * (k + 1)));
        put_word(msg, out.w_buffers + 2 * buffer + 2, (uint64_t)at);
        put_word(msg, out.w_buffers + 2 * buffer + 3, (uint64_t)total);
        buffer += 2;
        at += pad8(total);
    }
    /* The end-of-stream marker. */
    st64(msg + head + body, 0x00000000FFFFFFFFULL);
    goto done;
shape:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "layouts or messages do not fit");
done:
    for (Py_ssize_t i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(counts);
    PyMem_Free(cells);
    Py_XDECREF(seq);
    PyBuffer_Release(&out_buf);
    PyBuffer_Release(&in_buf);
    PyBuffer_Release(&prefix);
    return result;
}

/* A value of a cell as Python has it: None when null, else by ``kind`` (a struct code;
 * 's' a UTF-8 string, already validated by ``read_rows``). NULL with an error set. */
static PyObject *value_of(const Cell *c, char kind) {
    if (c->null) Py_RETURN_NONE;
    const unsigned char *v = c->value;
    switch (kind) {
    case 'q': return PyLong_FromLongLong((long long)ld64(v));
    case 'd': {
        double d;
        memcpy(&d, v, 8);
        return PyFloat_FromDouble(d);
    }
    case 'f': {
        float f;
        memcpy(&f, v, 4);
        return PyFloat_FromDouble((double)f);
    }
    case 'i': return PyLong_FromLong((long)ld32(v));
    case 'h': {
        int16_t h;
        memcpy(&h, v, 2);
        return PyLong_FromLong((long)h);
    }
    case 'B': return PyLong_FromLong((long)v[0]);
    default: return PyUnicode_DecodeUTF8((const char *)v, (Py_ssize_t)c->size, "strict");
    }
}

/* The width a kind reads (0: a UTF-8 string's offsets and characters); -2 if unknown. */
static int64_t kind_width(char kind) {
    switch (kind) {
    case 'q': case 'd': return 8;
    case 'f': case 'i': return 4;
    case 'h': return 2;
    case 'B': return 1;
    case 's': return WIDTH_UTF8;
    default: return -2;
    }
}

static PyObject *columns(PyObject *self, PyObject *args) {
    Py_buffer spec_buf, kinds, msg;
    if (!PyArg_ParseTuple(args, "y*y*y*", &spec_buf, &kinds, &msg)) return NULL;
    PyObject *result = NULL;
    Cell *cells = NULL;
    Spec s;
    if (!parse_spec(spec_buf.buf, spec_buf.len, &s)) goto done;
    const char *k = kinds.buf;
    int fits = kinds.len == s.n_fields;
    for (int64_t f = 0; fits && f < s.n_fields; f++) fits = kind_width(k[f]) == width_of(&s, f);
    if (!fits) {
        PyErr_SetString(PyExc_ValueError, "kinds do not fit the layout");
        goto done;
    }
    int64_t rows = read_rows(&s, msg.buf, msg.len);
    if (rows < 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    if (!(cells = PyMem_Malloc(sizeof(Cell) * (size_t)(rows * s.n_fields + 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    read_cells(&s, msg.buf, rows, cells);
    if (!(result = PyList_New(s.n_fields))) goto done;
    for (int64_t f = 0; f < s.n_fields; f++) {
        PyObject *column = PyList_New(rows);
        if (!column) goto fail;
        PyList_SET_ITEM(result, f, column);
        for (int64_t r = 0; r < rows; r++) {
            PyObject *value = value_of(&cells[r * s.n_fields + f], k[f]);
            if (!value) goto fail;
            PyList_SET_ITEM(column, r, value);
        }
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyMem_Free(cells);
    PyBuffer_Release(&spec_buf);
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&msg);
    return result;
}

static PyMethodDef methods[] = {
    {"check", check, METH_VARARGS,
     "check(spec, message) -> int: 1 when message is one valid one-row batch message of the "
     "layout, 2 when its metadata has another layout, 0 otherwise."},
    {"check_rows", check_rows, METH_VARARGS,
     "check_rows(spec, message) -> int: the rows of message when it is one valid batch "
     "message of the layout with any number of rows, -2 when its metadata has another "
     "layout, -1 otherwise."},
    {"columns", columns, METH_VARARGS,
     "columns(spec, kinds, message) -> list | None: each field's values (a list per field; "
     "kinds: a struct code per field, 's' for a string) when message is one valid batch "
     "message of the layout, any number of rows; None otherwise."},
    {"pack", pack, METH_VARARGS,
     "pack(out_spec, in_spec, prefix, messages, stamp) -> bytes | None: the messages as one "
     "batch, behind prefix and before the end-of-stream marker; None if one does not fit."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowpack", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowpack(void) {
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1) { /* the layouts are little-endian words */
        PyErr_SetString(PyExc_ImportError, "_rowpack needs a little-endian machine");
        return NULL;
    }
    return PyModule_Create(&module);
}
