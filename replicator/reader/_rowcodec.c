/* The reader's compiled fast path: a rows event's bytes -> Kafka records (key, envelope), directly.
 *
 * The pure-Python path (replicator/reader/decode.py + changes.build_events + ChangeEvent.to_json)
 * is the reference: this module writes the very bytes that path writes, without building a Python
 * value per column. Column layouts, the envelope's constant parts and the version of the event's
 * first row come prepared from replicator/reader/rowcodec.py; what is rare or needs Python's own
 * formatting (FLOAT, DOUBLE, JSON, the pre-5.6 temporal types, charsets other than UTF-8 and
 * latin1 outside ASCII, a malformed temporal) goes through a Python callable per value.
 *
 * encode(columns, body, images, kind, frags, pk, key_order, first_index, version0, value_json, topic)
 *   -> (records: list[tuple[str, bytes, bytes]], rows: int, inserts: int, updates: int, deletes: int)
 * columns: tuple of (code, a, b, name_json: bytes, extra) per column, see rowcodec.py.
 * records: (topic, key, value) per change event, in binlog order; then the count of each op.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

enum {
    C_INT = 1, C_DECIMAL = 2, C_YEAR = 3, C_BIT = 4, C_DATE = 5, C_DATETIME2 = 6, C_TIMESTAMP2 = 7,
    C_TIME2 = 8, C_TEXT = 9, C_BYTES = 10, C_ENUM = 11, C_SET = 12, C_PY = 13, C_DOUBLE = 14
};
enum { TEXT_UTF8 = 0, TEXT_ASCII_COMPAT = 1, TEXT_OTHER = 2 };

typedef struct {
    int code;
    long a, b;
    const char *name;  /* "name": */
    Py_ssize_t name_len;
    PyObject *extra;  /* borrowed */
} Col;

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t more) {
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (!p) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_grow(b, n) < 0) return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static inline int buf_str(Buf *b, const char *s) { return buf_put(b, s, (Py_ssize_t)strlen(s)); }

static int buf_bytes(Buf *b, PyObject *bytes) {
    return buf_put(b, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

static int buf_fmt_ll(Buf *b, long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    return buf_put(b, tmp, n);
}

static int buf_fmt_ull(Buf *b, unsigned long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", v);
    return buf_put(b, tmp, n);
}

/* A JSON string of valid UTF-8 bytes, escaped as orjson escapes: quote, backslash, controls. */
static int buf_json_string(Buf *b, const unsigned char *s, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_grow(b, n * 6 + 2) < 0) return -1;
    char *o = b->p + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\t': *o++ = 't'; break;
        case '\n': *o++ = 'n'; break;
        case '\f': *o++ = 'f'; break;
        case '\r': *o++ = 'r'; break;
        default:
            *o++ = 'u'; *o++ = '0'; *o++ = '0';
            *o++ = hex[c >> 4]; *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = o - b->p;
    return 0;
}

static int buf_base64(Buf *b, const unsigned char *s, Py_ssize_t n) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (buf_grow(b, (n + 2) / 3 * 4) < 0) return -1;
    char *o = b->p + b->len;
    Py_ssize_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *o++ = tbl[v >> 18]; *o++ = tbl[(v >> 12) & 63]; *o++ = tbl[(v >> 6) & 63]; *o++ = tbl[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)s[i] << 16;
        *o++ = tbl[v >> 18]; *o++ = tbl[(v >> 12) & 63]; *o++ = '='; *o++ = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
        *o++ = tbl[v >> 18]; *o++ = tbl[(v >> 12) & 63]; *o++ = tbl[(v >> 6) & 63]; *o++ = '=';
    }
    b->len = o - b->p;
    return 0;
}

/* ------------------------------------------------------------------ reading the body */

typedef struct {
    const unsigned char *p;
    Py_ssize_t len;
    PyObject *obj;  /* the body as a bytes object, for the Python decoders */
} Body;

static int need(const Body *body, Py_ssize_t pos, Py_ssize_t n) {
    if (n < 0 || pos + n > body->len) {
        PyErr_Format(PyExc_ValueError, "a row image runs past the end of its rows event (offset %zd, %zd "
                     "bytes wanted, %zd in the event)", pos, n, body->len);
        return -1;
    }
    return 0;
}

static inline unsigned long long le(const unsigned char *p, int n) {
    unsigned long long v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static inline unsigned long long be(const unsigned char *p, int n) {
    unsigned long long v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

static const int FSP_BYTES[7] = {0, 1, 1, 2, 2, 3, 3};
static const int DIG2BYTES[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};

/* The value through a Python decoder ((buf, pos) -> (value, next_pos)) and value_json. */
static int py_column(Buf *out, const Body *body, Py_ssize_t *pos, PyObject *decoder, PyObject *value_json) {
    PyObject *res = PyObject_CallFunction(decoder, "On", body->obj, *pos);
    if (!res) return -1;
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
        Py_DECREF(res);
        PyErr_SetString(PyExc_TypeError, "a column decoder returned no (value, next_pos) pair");
        return -1;
    }
    Py_ssize_t nxt = PyLong_AsSsize_t(PyTuple_GET_ITEM(res, 1));
    if (nxt == -1 && PyErr_Occurred()) { Py_DECREF(res); return -1; }
    PyObject *js = PyObject_CallOneArg(value_json, PyTuple_GET_ITEM(res, 0));
    Py_DECREF(res);
    if (!js) return -1;
    if (!PyBytes_Check(js)) { Py_DECREF(js); PyErr_SetString(PyExc_TypeError, "value_json returned no bytes"); return -1; }
    int rc = buf_bytes(out, js);
    Py_DECREF(js);
    *pos = nxt;
    return rc;
}

static int frac_text(char *dst, long long micro, int fsp) {
    if (!fsp) return 0;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%06lld", micro);
    dst[0] = '.';
    memcpy(dst + 1, tmp, (size_t)fsp);
    return fsp + 1;
}

static long long read_frac(const unsigned char *p, int fsp) {
    int n = FSP_BYTES[fsp];
    if (!n) return 0;
    static const long long mult[3] = {10000, 100, 1};
    return (long long)be(p, n) * mult[n - 1];
}

static int tagged_text(Buf *out, const char *tag, const char *text, int n) {
    if (buf_str(out, "{\"$") < 0 || buf_str(out, tag) < 0 || buf_put(out, "\":\"", 3) < 0) return -1;
    if (buf_put(out, text, n) < 0) return -1;
    return buf_put(out, "\"}", 2);
}

/* str(Decimal(sign + digits)) for a coefficient text and the count of its fraction digits. */
static int decimal_text(Buf *out, int negative, const char *digits, int ndigits, int nfrac) {
    while (ndigits > 1 && *digits == '0') { digits++; ndigits--; }
    if (ndigits == 1 && *digits == '0') { /* already "0" */ }
    long exp = -nfrac;
    long leftdigits = exp + ndigits;
    long dotplace = (exp <= 0 && leftdigits > -6) ? leftdigits : 1;
    if (buf_put(out, "{\"$decimal\":\"", 13) < 0) return -1;
    if (negative && buf_put(out, "-", 1) < 0) return -1;
    if (dotplace <= 0) {
        if (buf_put(out, "0.", 2) < 0) return -1;
        for (long i = 0; i < -dotplace; i++) if (buf_put(out, "0", 1) < 0) return -1;
        if (buf_put(out, digits, ndigits) < 0) return -1;
    } else if (dotplace >= ndigits) {
        if (buf_put(out, digits, ndigits) < 0) return -1;
        for (long i = 0; i < dotplace - ndigits; i++) if (buf_put(out, "0", 1) < 0) return -1;
    } else {
        if (buf_put(out, digits, dotplace) < 0 || buf_put(out, ".", 1) < 0) return -1;
        if (buf_put(out, digits + dotplace, ndigits - dotplace) < 0) return -1;
    }
    if (leftdigits != dotplace) {
        char tmp[32];
        int n = snprintf(tmp, sizeof tmp, "E%+ld", leftdigits - dotplace);
        if (buf_put(out, tmp, n) < 0) return -1;
    }
    return buf_put(out, "\"}", 2);
}

static int decimal_value(Buf *out, const unsigned char *raw, int precision, int scale) {
    unsigned char b[64];
    int intg = precision - scale;
    int size = (intg / 9) * 4 + DIG2BYTES[intg % 9] + (scale / 9) * 4 + DIG2BYTES[scale % 9];
    if (size > (int)sizeof b) { PyErr_SetString(PyExc_ValueError, "DECIMAL wider than 65 digits"); return -1; }
    memcpy(b, raw, (size_t)size);
    int negative = !(b[0] & 0x80);
    b[0] ^= 0x80;
    if (negative) for (int i = 0; i < size; i++) b[i] ^= 0xFF;
    char digits[200];
    int nd = 0, pos = 0;
    int lead = DIG2BYTES[intg % 9];
    char ibuf[120];
    int ni = 0;
    if (lead) { ni += snprintf(ibuf + ni, sizeof ibuf - ni, "%llu", be(b, lead)); pos = lead; }
    for (int i = 0; i < intg / 9; i++, pos += 4) ni += snprintf(ibuf + ni, sizeof ibuf - ni, "%09llu", be(b + pos, 4));
    /* int_digits.lstrip("0") or "0" */
    int skip = 0;
    while (skip < ni && ibuf[skip] == '0') skip++;
    if (skip == ni) { digits[nd++] = '0'; } else { memcpy(digits, ibuf + skip, (size_t)(ni - skip)); nd = ni - skip; }
    int nf = 0;
    char fbuf[120];
    for (int i = 0; i < scale / 9; i++, pos += 4) nf += snprintf(fbuf + nf, sizeof fbuf - nf, "%09llu", be(b + pos, 4));
    int tail = DIG2BYTES[scale % 9];
    if (tail) nf += snprintf(fbuf + nf, sizeof fbuf - nf, "%0*llu", scale % 9, be(b + pos, tail));
    if (!scale) nf = 0;
    memcpy(digits + nd, fbuf, (size_t)nf);
    return decimal_text(out, negative, digits, nd + nf, nf);
}

/* One column value (not NULL) at *pos, as JSON, appended to out. */
static int column_value(Buf *out, const Col *c, const Body *body, Py_ssize_t *pos, PyObject *value_json) {
    const unsigned char *p = body->p + *pos;
    char t[96];
    int n;
    switch (c->code) {
    case C_INT: {
        int w = (int)c->a;
        if (need(body, *pos, w) < 0) return -1;
        unsigned long long v = le(p, w);
        *pos += w;
        if (c->b) return buf_fmt_ull(out, v);
        if (w < 8 && (v >> (w * 8 - 1)) & 1) return buf_fmt_ll(out, (long long)v - (1LL << (w * 8)));
        return buf_fmt_ll(out, (long long)v);
    }
    case C_YEAR:
        if (need(body, *pos, 1) < 0) return -1;
        *pos += 1;
        return buf_fmt_ll(out, p[0] ? p[0] + 1900 : 0);
    case C_BIT: {
        int w = (int)c->a;
        if (need(body, *pos, w) < 0) return -1;
        *pos += w;
        return buf_fmt_ull(out, be(p, w));
    }
    case C_DECIMAL: {
        int prec = (int)c->a, scale = (int)c->b, intg = prec - scale;
        int size = (intg / 9) * 4 + DIG2BYTES[intg % 9] + (scale / 9) * 4 + DIG2BYTES[scale % 9];
        if (need(body, *pos, size) < 0) return -1;
        *pos += size;
        return decimal_value(out, p, prec, scale);
    }
    case C_DATE: {
        if (need(body, *pos, 3) < 0) return -1;
        unsigned long v = (unsigned long)le(p, 3);
        *pos += 3;
        n = snprintf(t, sizeof t, "%04lu-%02lu-%02lu", v >> 9, (v >> 5) & 15, v & 31);
        return tagged_text(out, "date", t, n);
    }
    case C_DATETIME2: {
        int fsp = (int)c->a, size = 5 + FSP_BYTES[fsp];
        if (need(body, *pos, size) < 0) return -1;
        long long packed = (long long)be(p, 5) - 0x8000000000LL;
        if (packed < 0) return py_column(out, body, pos, c->extra, value_json);
        long long ymd = packed >> 17, hms = packed & 0x1FFFF, ym = ymd >> 5;
        n = snprintf(t, sizeof t, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld", ym / 13, ym % 13, ymd & 31,
                     hms >> 12, (hms >> 6) & 63, hms & 63);
        n += frac_text(t + n, read_frac(p + 5, fsp), fsp);
        *pos += size;
        return tagged_text(out, "datetime", t, n);
    }
    case C_TIMESTAMP2: {
        int fsp = (int)c->a, size = 4 + FSP_BYTES[fsp];
        if (need(body, *pos, size) < 0) return -1;
        unsigned long long secs = be(p, 4);
        long long micro = read_frac(p + 4, fsp);
        if (secs == 0 && micro == 0) {
            n = snprintf(t, sizeof t, "0000-00-00T00:00:00");
        } else {
            time_t tt = (time_t)secs;
            struct tm tm;
            if (!gmtime_r(&tt, &tm)) return py_column(out, body, pos, c->extra, value_json);
            n = (int)strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
        }
        n += frac_text(t + n, micro, fsp);
        t[n++] = 'Z';
        *pos += size;
        return tagged_text(out, "timestamp", t, n);
    }
    case C_TIME2: {
        int fsp = (int)c->a, nb = FSP_BYTES[fsp], size = 3 + nb;
        if (need(body, *pos, size) < 0) return -1;
        long long intpart = (long long)be(p, 3) - 0x800000LL, packed;
        if (nb == 3) {
            packed = (long long)be(p, 6) - 0x800000000000LL;
        } else {
            long long frac = nb ? (long long)be(p + 3, nb) : 0;
            if (intpart < 0 && frac) {
                intpart += 1;
                frac -= nb == 1 ? 0x100 : 0x10000;
            }
            packed = intpart * (1LL << 24) + frac * (nb == 1 ? 10000 : 100);
        }
        const char *sign = packed < 0 ? "-" : "";
        if (packed < 0) packed = -packed;
        long long hms = packed >> 24, micro = packed & 0xFFFFFF;
        n = snprintf(t, sizeof t, "%s%02lld:%02lld:%02lld", sign, (hms >> 12) & 0x3FF, (hms >> 6) & 63, hms & 63);
        n += frac_text(t + n, micro, fsp);
        *pos += size;
        return tagged_text(out, "time", t, n);
    }
    case C_TEXT: {
        int ls = (int)c->a;
        if (need(body, *pos, ls) < 0) return -1;
        Py_ssize_t len = (Py_ssize_t)le(p, ls);
        if (need(body, *pos + ls, len) < 0) return -1;
        const unsigned char *s = p + ls;
        *pos += ls + len;
        int ascii = c->b != TEXT_OTHER;
        if (ascii) for (Py_ssize_t i = 0; i < len; i++) if (s[i] & 0x80) { ascii = 0; break; }
        if (ascii) return buf_json_string(out, s, len);
        if (c->b == TEXT_UTF8) {
            /* Validate as Python's strict UTF-8 decoder does; valid UTF-8 is its own re-encoding. */
            PyObject *u = PyUnicode_DecodeUTF8((const char *)s, len, "strict");
            if (!u) return -1;
            Py_DECREF(u);
            return buf_json_string(out, s, len);
        }
        PyObject *codec = PyTuple_GET_ITEM(c->extra, 0), *errors = PyTuple_GET_ITEM(c->extra, 1);
        PyObject *u = PyUnicode_Decode((const char *)s, len, PyUnicode_AsUTF8(codec), PyUnicode_AsUTF8(errors));
        if (!u) return -1;
        Py_ssize_t ulen;
        const char *utf8 = PyUnicode_AsUTF8AndSize(u, &ulen);
        int rc = utf8 ? buf_json_string(out, (const unsigned char *)utf8, ulen) : -1;
        Py_DECREF(u);
        return rc;
    }
    case C_BYTES: {
        int ls = (int)c->a;
        Py_ssize_t pad = c->b;
        if (need(body, *pos, ls) < 0) return -1;
        Py_ssize_t len = (Py_ssize_t)le(p, ls);
        if (need(body, *pos + ls, len) < 0) return -1;
        const unsigned char *s = p + ls;
        *pos += ls + len;
        if (buf_put(out, "{\"$bytes\":\"", 11) < 0) return -1;
        if (pad > len) {
            unsigned char *padded = PyMem_Malloc((size_t)pad);
            if (!padded) { PyErr_NoMemory(); return -1; }
            memcpy(padded, s, (size_t)len);
            memset(padded + len, 0, (size_t)(pad - len));
            int rc = buf_base64(out, padded, pad);
            PyMem_Free(padded);
            if (rc < 0) return -1;
        } else if (buf_base64(out, s, len) < 0) {
            return -1;
        }
        return buf_put(out, "\"}", 2);
    }
    case C_ENUM: {
        int w = (int)c->a;
        if (need(body, *pos, w) < 0) return -1;
        unsigned long long idx = le(p, w);
        *pos += w;
        PyObject *members = c->extra;  /* JSON of "", then each member */
        if (idx >= (unsigned long long)PyTuple_GET_SIZE(members)) idx = 0;
        return buf_bytes(out, PyTuple_GET_ITEM(members, (Py_ssize_t)idx));
    }
    case C_SET: {
        int w = (int)c->a;
        if (need(body, *pos, w) < 0) return -1;
        unsigned long long mask = le(p, w);
        *pos += w;
        PyObject *members = c->extra;  /* (bit, JSON) pairs in sorted member order */
        if (buf_put(out, "{\"$set\":[", 9) < 0) return -1;
        int first = 1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(members); i++) {
            PyObject *pair = PyTuple_GET_ITEM(members, i);
            long bit = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
            if (bit < 64 && (mask >> bit) & 1) {
                if (!first && buf_put(out, ",", 1) < 0) return -1;
                if (buf_bytes(out, PyTuple_GET_ITEM(pair, 1)) < 0) return -1;
                first = 0;
            }
        }
        return buf_put(out, "]}", 2);
    }
    case C_DOUBLE: {
        if (need(body, *pos, 8) < 0) return -1;
        double d;
        unsigned long long bits = le(p, 8);
        memcpy(&d, &bits, 8);
        *pos += 8;
        PyObject *f = PyFloat_FromDouble(d);
        if (!f) return -1;
        PyObject *js = PyObject_CallOneArg(value_json, f);
        Py_DECREF(f);
        if (!js) return -1;
        int rc = PyBytes_Check(js) ? buf_bytes(out, js) : -1;
        if (rc < 0 && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "value_json returned no bytes");
        Py_DECREF(js);
        return rc;
    }
    case C_PY:
        return py_column(out, body, pos, c->extra, value_json);
    }
    PyErr_Format(PyExc_ValueError, "unknown column code %d", c->code);
    return -1;
}

/* One row image as a JSON object; spans[i] = (start, end) of column i's value JSON in out. */
static int image(Buf *out, const Col *cols, Py_ssize_t ncols, const Body *body, Py_ssize_t *pos,
                 Py_ssize_t *spans, PyObject *value_json) {
    Py_ssize_t nulls_len = (ncols + 7) >> 3;
    if (need(body, *pos, nulls_len) < 0) return -1;
    const unsigned char *nulls = body->p + *pos;
    *pos += nulls_len;
    if (buf_put(out, "{", 1) < 0) return -1;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        if (i && buf_put(out, ",", 1) < 0) return -1;
        if (buf_put(out, cols[i].name, cols[i].name_len) < 0) return -1;
        spans[2 * i] = out->len;
        if ((nulls[i >> 3] >> (i & 7)) & 1) {
            if (buf_put(out, "null", 4) < 0) return -1;
        } else if (column_value(out, &cols[i], body, pos, value_json) < 0) {
            return -1;
        }
        spans[2 * i + 1] = out->len;
    }
    return buf_put(out, "}", 1);
}

typedef struct {
    PyObject *op_prefix[3];  /* {"v":1,"op":"c"  /u/d */
    PyObject *db_table_pk, *pos_file, *gtid_version, *ts_tx, *schema_columns;
} Frags;

static int pairs(Buf *out, const Col *cols, PyObject *order, const char *img, const Py_ssize_t *spans) {
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(order); k++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(order, k));
        if (k && buf_put(out, ",", 1) < 0) return -1;
        if (buf_put(out, cols[i].name, cols[i].name_len) < 0) return -1;
        if (buf_put(out, img + spans[2 * i], spans[2 * i + 1] - spans[2 * i]) < 0) return -1;
    }
    return 0;
}

/* One change event: (topic, key, value) appended to records; counts[op] incremented. */
static int event(PyObject *records, PyObject *topic, Py_ssize_t *counts, const Frags *f, int op, const Col *cols, PyObject *pk, PyObject *key_order,
                 const char *before, Py_ssize_t before_len, const Py_ssize_t *before_spans,
                 const char *after, Py_ssize_t after_len, const Py_ssize_t *after_spans,
                 long long row, unsigned long long version, long long index) {
    const char *img = after ? after : before;
    const Py_ssize_t *spans = after ? after_spans : before_spans;
    Buf v = {0}, k = {0};
    PyObject *rec = NULL, *kb = NULL, *vb = NULL;
    if (buf_bytes(&v, f->op_prefix[op]) < 0 || buf_bytes(&v, f->db_table_pk) < 0) goto fail;
    if (pairs(&v, cols, pk, img, spans) < 0) goto fail;
    if (buf_bytes(&v, f->pos_file) < 0 || buf_fmt_ll(&v, row) < 0 || buf_bytes(&v, f->gtid_version) < 0) goto fail;
    if (buf_fmt_ull(&v, version) < 0 || buf_bytes(&v, f->ts_tx) < 0 || buf_fmt_ll(&v, index) < 0) goto fail;
    if (buf_bytes(&v, f->schema_columns) < 0) goto fail;
    if (before && (buf_put(&v, ",\"before\":", 10) < 0 || buf_put(&v, before, before_len) < 0)) goto fail;
    if (after && (buf_put(&v, ",\"after\":", 9) < 0 || buf_put(&v, after, after_len) < 0)) goto fail;
    if (buf_put(&v, "}", 1) < 0) goto fail;
    if (buf_put(&k, "{", 1) < 0 || pairs(&k, cols, key_order, img, spans) < 0 || buf_put(&k, "}", 1) < 0) goto fail;
    kb = PyBytes_FromStringAndSize(k.p, k.len);
    vb = PyBytes_FromStringAndSize(v.p, v.len);
    if (!kb || !vb) goto fail;
    rec = PyTuple_Pack(3, topic, kb, vb);
    if (!rec) goto fail;
    counts[op]++;
    if (PyList_Append(records, rec) < 0) goto fail;
    Py_DECREF(rec); Py_DECREF(kb); Py_DECREF(vb);
    PyMem_Free(v.p); PyMem_Free(k.p);
    return 0;
fail:
    Py_XDECREF(rec); Py_XDECREF(kb); Py_XDECREF(vb);
    PyMem_Free(v.p); PyMem_Free(k.p);
    return -1;
}

static int same_pk(PyObject *pk, const char *a, const Py_ssize_t *as, const char *b, const Py_ssize_t *bs) {
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(pk); k++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(pk, k));
        Py_ssize_t la = as[2 * i + 1] - as[2 * i], lb = bs[2 * i + 1] - bs[2 * i];
        if (la != lb || memcmp(a + as[2 * i], b + bs[2 * i], (size_t)la)) return 0;
    }
    return 1;
}

#define VERSION_BASE_MASK ((1ULL << 52) - 1)

static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *columns, *frags, *pk, *key_order, *value_json, *topic;
    Py_ssize_t counts[3] = {0, 0, 0};
    PyObject *body_obj;
    int images, kind;
    long long first_index;
    unsigned long long version0;
    if (!PyArg_ParseTuple(args, "O!O!iiO!O!O!LKOO!", &PyTuple_Type, &columns, &PyBytes_Type, &body_obj, &images, &kind,
                          &PyTuple_Type, &frags, &PyTuple_Type, &pk, &PyTuple_Type, &key_order, &first_index,
                          &version0, &value_json, &PyUnicode_Type, &topic))
        return NULL;
    PyObject *result = NULL, *records = NULL;
    Col *cols = NULL;
    Py_ssize_t *spans = NULL;
    Buf b1 = {0}, b2 = {0};
    Py_ssize_t ncols = PyTuple_GET_SIZE(columns);
    Frags f;
    if (PyTuple_GET_SIZE(frags) != 8 || images < 1 || images > 2 || kind < 0 || kind > 2) {
        PyErr_SetString(PyExc_ValueError, "encode: bad frags, images or kind");
        goto done;
    }
    for (int i = 0; i < 3; i++) f.op_prefix[i] = PyTuple_GET_ITEM(frags, i);
    f.db_table_pk = PyTuple_GET_ITEM(frags, 3);
    f.pos_file = PyTuple_GET_ITEM(frags, 4);
    f.gtid_version = PyTuple_GET_ITEM(frags, 5);
    f.ts_tx = PyTuple_GET_ITEM(frags, 6);
    f.schema_columns = PyTuple_GET_ITEM(frags, 7);
    for (Py_ssize_t i = 0; i < 8; i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(frags, i))) { PyErr_SetString(PyExc_TypeError, "frags must be bytes"); goto done; }
    }
    cols = PyMem_Calloc((size_t)(ncols ? ncols : 1), sizeof(Col));
    spans = PyMem_Calloc((size_t)(ncols ? ncols : 1) * 4, sizeof(Py_ssize_t));
    if (!cols || !spans) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < ncols; i++) {
        PyObject *c = PyTuple_GET_ITEM(columns, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) != 5 || !PyBytes_Check(PyTuple_GET_ITEM(c, 3))) {
            PyErr_SetString(PyExc_TypeError, "a column layout is (code, a, b, name_json, extra)");
            goto done;
        }
        cols[i].code = (int)PyLong_AsLong(PyTuple_GET_ITEM(c, 0));
        cols[i].a = PyLong_AsLong(PyTuple_GET_ITEM(c, 1));
        cols[i].b = PyLong_AsLong(PyTuple_GET_ITEM(c, 2));
        cols[i].name = PyBytes_AS_STRING(PyTuple_GET_ITEM(c, 3));
        cols[i].name_len = PyBytes_GET_SIZE(PyTuple_GET_ITEM(c, 3));
        cols[i].extra = PyTuple_GET_ITEM(c, 4);
        if (PyErr_Occurred()) goto done;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(pk); k++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(pk, k));
        if (i < 0 || i >= ncols) { PyErr_SetString(PyExc_ValueError, "a key column index is out of range"); goto done; }
    }
    records = PyList_New(0);
    if (!records) goto done;
    Body body = {(const unsigned char *)PyBytes_AS_STRING(body_obj), PyBytes_GET_SIZE(body_obj), body_obj};
    Py_ssize_t pos = 0;
    long long row = 0, index = first_index;
    unsigned long long base0 = version0 & VERSION_BASE_MASK, high = version0 & ~VERSION_BASE_MASK;
    while (pos < body.len) {
        b1.len = b2.len = 0;
        if (image(&b1, cols, ncols, &body, &pos, spans, value_json) < 0) goto done;
        if (images == 2 && image(&b2, cols, ncols, &body, &pos, spans + 2 * ncols, value_json) < 0) goto done;
        if (base0 + 2ULL * (unsigned long long)row + 1 > VERSION_BASE_MASK) {
            PyErr_Format(PyExc_ValueError, "version base out of range at row %lld", row);
            goto done;
        }
        unsigned long long v = high | (base0 + 2ULL * (unsigned long long)row);
        if (kind == 0) {
            if (event(records, topic, counts, &f, 0, cols, pk, key_order, NULL, 0, NULL, b1.p, b1.len, spans, row, v, index++) < 0) goto done;
        } else if (kind == 2) {
            if (event(records, topic, counts, &f, 2, cols, pk, key_order, b1.p, b1.len, spans, NULL, 0, NULL, row, v, index++) < 0) goto done;
        } else if (images == 1) {
            PyErr_SetString(PyExc_ValueError, "an update needs two row images");
            goto done;
        } else if (same_pk(pk, b1.p, spans, b2.p, spans + 2 * ncols)) {
            if (event(records, topic, counts, &f, 1, cols, pk, key_order, b1.p, b1.len, spans, b2.p, b2.len, spans + 2 * ncols,
                      row, v, index++) < 0) goto done;
        } else {
            if (event(records, topic, counts, &f, 2, cols, pk, key_order, b1.p, b1.len, spans, NULL, 0, NULL, row, v, index++) < 0) goto done;
            if (event(records, topic, counts, &f, 0, cols, pk, key_order, NULL, 0, NULL, b2.p, b2.len, spans + 2 * ncols, row, v + 1,
                      index++) < 0) goto done;
        }
        row++;
    }
    result = Py_BuildValue("(OLnnn)", records, row, counts[0], counts[1], counts[2]);
done:
    Py_XDECREF(records);
    PyMem_Free(cols);
    PyMem_Free(spans);
    PyMem_Free(b1.p);
    PyMem_Free(b2.p);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS, "A rows event's bytes -> ([(key, value, op)], rows); see rowcodec.py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rowcodec", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rowcodec(void) {
    return PyModule_Create(&module);
}
