/* One JSONL record line written straight into the sink's buffer: the common record's case.

   Building the record as a dict (Result.to_record) and handing it to orjson cost more
   than a tenth of a request on the fast engine: twenty dict insertions, then twenty
   lookups to walk them again. append_record() takes the fields themselves and appends
   the line orjson would have produced, byte for byte: the same key order, the same
   string escapes (two-character escapes for \b \t \n \f \r, \u00XX for the other
   control bytes, everything else as UTF-8) and the same numbers. Where it could differ
   from orjson it declines instead, leaving the buffer as it was, and the caller takes
   the orjson path: a string with a lone surrogate, an integer beyond 64 bits, a float
   that needs an exponent or is not finite, a value of an unexpected type.
   tests/test_record_json.py holds it to orjson's bytes.

   append_record(buffer, id, line, method, url, final_url, status, ok, error_kind,
                 error_message, attempts, queued_ms, connect_ms, ttfb_ms, total_ms,
                 wait_ms, bytes, sha256, content_type, protocol, body_key, body_value,
                 started_at) -> bool
   (error_kind is None for a record without an error; body_key None for one without a
   body field; headers and meta are the caller's to check: it only calls this without.)
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    char inline_space[1024];
} Out;

enum { ARG_BUFFER, ARG_ID, ARG_LINE, ARG_METHOD, ARG_URL, ARG_FINAL_URL, ARG_STATUS, ARG_OK,
       ARG_ERROR_KIND, ARG_ERROR_MESSAGE, ARG_ATTEMPTS, ARG_QUEUED, ARG_CONNECT, ARG_TTFB,
       ARG_TOTAL, ARG_WAIT, ARG_BYTES, ARG_SHA256, ARG_CONTENT_TYPE, ARG_PROTOCOL, ARG_BODY_KEY,
       ARG_BODY_VALUE, ARG_STARTED_AT, ARG_COUNT };

/* 0 on success; -1 with MemoryError set. */
static int reserve(Out *out, Py_ssize_t more)
{
    Py_ssize_t need = out->len + more;
    char *grown;
    if (need <= out->cap) {
        return 0;
    }
    while (out->cap < need) {
        out->cap *= 2;
    }
    if (out->data == out->inline_space) {
        grown = PyMem_Malloc((size_t)out->cap);
        if (grown != NULL) {
            memcpy(grown, out->data, (size_t)out->len);
        }
    } else {
        grown = PyMem_Realloc(out->data, (size_t)out->cap);
    }
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = grown;
    return 0;
}

static int put(Out *out, const char *text, Py_ssize_t len)
{
    if (reserve(out, len) < 0) {
        return -1;
    }
    memcpy(out->data + out->len, text, (size_t)len);
    out->len += len;
    return 0;
}

#define PUT_LITERAL(out, text) put((out), (text), (Py_ssize_t)(sizeof(text) - 1))

/* Results of the writers below: written, declined (orjson's case), or a Python error. */
#define WROTE 0
#define DECLINED 1
#define FAILED (-1)

/* Bytes added by escaping each byte: 1 for \" \\ \b \t \n \f \r, 5 for \u00XX. */
static unsigned char escape_extra[256];

static void fill_escape_table(void)
{
    int c;
    for (c = 0; c < 0x20; c++) {
        escape_extra[c] = 5;
    }
    escape_extra['"'] = escape_extra['\\'] = 1;
    escape_extra['\b'] = escape_extra['\t'] = escape_extra['\n'] = 1;
    escape_extra['\f'] = escape_extra['\r'] = 1;
}

static int put_string(Out *out, PyObject *value)
{
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t size, i, extra = 0;
    const unsigned char *utf8;
    char *w;
    if (!PyUnicode_CheckExact(value)) {
        return DECLINED;
    }
    utf8 = (const unsigned char *)PyUnicode_AsUTF8AndSize(value, &size);
    if (utf8 == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            return FAILED;
        }
        PyErr_Clear(); /* a lone surrogate: orjson's slow path escapes it */
        return DECLINED;
    }
    for (i = 0; i < size; i++) {
        extra += escape_extra[utf8[i]];
    }
    /* Reserved once, exactly, so that a large body is not copied twice. */
    if (reserve(out, size + extra + 2) < 0) {
        return FAILED;
    }
    w = out->data + out->len;
    *w++ = '"';
    if (extra == 0) {
        memcpy(w, utf8, (size_t)size);
        w += size;
    } else {
        for (i = 0; i < size; i++) {
            unsigned char c = utf8[i];
            if (escape_extra[c] == 0) {
                *w++ = (char)c;
                continue;
            }
            *w++ = '\\';
            switch (c) {
            case '"': *w++ = '"'; break;
            case '\\': *w++ = '\\'; break;
            case '\b': *w++ = 'b'; break;
            case '\t': *w++ = 't'; break;
            case '\n': *w++ = 'n'; break;
            case '\f': *w++ = 'f'; break;
            case '\r': *w++ = 'r'; break;
            default:
                *w++ = 'u';
                *w++ = '0';
                *w++ = '0';
                *w++ = hex[c >> 4];
                *w++ = hex[c & 0xF];
            }
        }
    }
    *w++ = '"';
    out->len = w - out->data;
    return WROTE;
}

/* Decimal digits of a non-negative number, written backwards from end; returns the start. */
static char *digits_before(char *end, unsigned long long number)
{
    do {
        *--end = (char)('0' + number % 10);
        number /= 10;
    } while (number != 0);
    return end;
}

static int put_int(Out *out, PyObject *value)
{
    char text[24];
    char *start;
    int overflow = 0;
    long long number;
    if (!PyLong_CheckExact(value)) {
        return DECLINED; /* bool is orjson's true/false, not a number */
    }
    number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow != 0) {
        return DECLINED;
    }
    if (number == -1 && PyErr_Occurred()) {
        return FAILED;
    }
    /* The magnitude as unsigned, so that LLONG_MIN does not overflow. */
    start = digits_before(text + sizeof text,
                          number < 0 ? 0ULL - (unsigned long long)number
                                     : (unsigned long long)number);
    if (number < 0) {
        *--start = '-';
    }
    return put(out, start, text + sizeof text - start) < 0 ? FAILED : WROTE;
}

/* A timing rounded to the microsecond is m / 1000 exactly (executor._three_places): its
   shortest round-trip text, what repr() and orjson write, is that decimal with the zeros
   after the last nonzero fraction digit dropped ("8.0", "0.25", "7.144"). Below 1e12 no
   other decimal of three places or fewer lies within half a unit in the last place, so
   no shorter text exists. DECLINED when the value is not of that kind. */
static int put_thousandths(Out *out, double number)
{
    char text[32];
    char *end = text + sizeof text, *start;
    double scaled = number * 1000.0;
    long long m;
    int frac, places = 3;
    if (number == 0.0) {
        /* Most records' wait_ms: formatting it generally cost 500 instructions. */
        return put(out, signbit(number) ? "-0.0" : "0.0", signbit(number) ? 4 : 3) < 0
            ? FAILED
            : WROTE;
    }
    if (!(scaled > -1e15 && scaled < 1e15)) {
        return DECLINED;
    }
    m = (long long)(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
    if ((double)m / 1000.0 != number) {
        return DECLINED;
    }
    frac = (int)((m < 0 ? -m : m) % 1000);
    if (frac == 0) {
        *--end = '0';
        places = 0;
    } else {
        while (frac % 10 == 0) {
            frac /= 10;
            places--;
        }
        for (; places > 0; places--) {
            *--end = (char)('0' + frac % 10);
            frac /= 10;
        }
    }
    *--end = '.';
    start = digits_before(end, (unsigned long long)((m < 0 ? -m : m) / 1000));
    if (m < 0) {
        *--start = '-';
    }
    return put(out, start, text + sizeof text - start) < 0 ? FAILED : WROTE;
}

/* repr()'s shortest round-trip digits, which orjson also writes when no exponent is
   needed; with one, the two spell it differently (1e-05 against 0.00001): declined. */
static int put_float(Out *out, PyObject *value)
{
    char *text;
    int result;
    double number;
    if (!PyFloat_CheckExact(value)) {
        return DECLINED;
    }
    number = PyFloat_AS_DOUBLE(value);
    if (!Py_IS_FINITE(number)) {
        return DECLINED;
    }
    result = put_thousandths(out, number);
    if (result != DECLINED) {
        return result;
    }
    text = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return FAILED;
    }
    if (strchr(text, 'e') != NULL) {
        result = DECLINED;
    } else {
        result = put(out, text, (Py_ssize_t)strlen(text)) < 0 ? FAILED : WROTE;
    }
    PyMem_Free(text);
    return result;
}

typedef int (*Writer)(Out *, PyObject *);

#define PUT_FIELD(out, key, value, writer) \
    put_field((out), (key), (Py_ssize_t)(sizeof(key) - 1), (value), (writer))

/* ,"key": then the value, or null for None (PUT_FIELD passes the key's length). */
static int put_field(Out *out, const char *key_and_colon, Py_ssize_t key_len, PyObject *value,
                     Writer writer)
{
    if (put(out, key_and_colon, key_len) < 0) {
        return FAILED;
    }
    if (value == Py_None) {
        return PUT_LITERAL(out, "null") < 0 ? FAILED : WROTE;
    }
    return writer(out, value);
}

static int put_bool(Out *out, PyObject *value)
{
    if (value == Py_True) {
        return PUT_LITERAL(out, "true") < 0 ? FAILED : WROTE;
    }
    if (value == Py_False) {
        return PUT_LITERAL(out, "false") < 0 ? FAILED : WROTE;
    }
    return DECLINED;
}

static int put_error(Out *out, PyObject *const *args)
{
    int status;
    if (args[ARG_ERROR_KIND] == Py_None) {
        return PUT_LITERAL(out, ",\"error\":null") < 0 ? FAILED : WROTE;
    }
    status = PUT_FIELD(out, ",\"error\":{\"kind\":", args[ARG_ERROR_KIND], put_string);
    if (status == WROTE) {
        status = PUT_FIELD(out, ",\"message\":", args[ARG_ERROR_MESSAGE], put_string);
    }
    if (status == WROTE && PUT_LITERAL(out, "}") < 0) {
        status = FAILED;
    }
    return status;
}

static int put_body(Out *out, PyObject *const *args)
{
    int status;
    if (args[ARG_BODY_KEY] == Py_None) {
        return WROTE;
    }
    if (PUT_LITERAL(out, ",") < 0) {
        return FAILED;
    }
    status = put_string(out, args[ARG_BODY_KEY]);
    if (status == WROTE) {
        status = PUT_FIELD(out, ":", args[ARG_BODY_VALUE], put_string);
    }
    return status;
}

static int put_record(Out *out, PyObject *const *args)
{
    int status = PUT_FIELD(out, "{\"id\":", args[ARG_ID], put_string);
#define NEXT(key, arg, writer)                                         \
    if (status == WROTE) {                                             \
        status = PUT_FIELD(out, ",\"" key "\":", args[arg], writer);   \
    }
    NEXT("line", ARG_LINE, put_int)
    NEXT("method", ARG_METHOD, put_string)
    NEXT("url", ARG_URL, put_string)
    NEXT("final_url", ARG_FINAL_URL, put_string)
    NEXT("status", ARG_STATUS, put_int)
    NEXT("ok", ARG_OK, put_bool)
    if (status == WROTE) {
        status = put_error(out, args);
    }
    NEXT("attempts", ARG_ATTEMPTS, put_int)
    if (status == WROTE) {
        status = PUT_FIELD(out, ",\"timings\":{\"queued_ms\":", args[ARG_QUEUED], put_float);
    }
    NEXT("connect_ms", ARG_CONNECT, put_float)
    NEXT("ttfb_ms", ARG_TTFB, put_float)
    NEXT("total_ms", ARG_TOTAL, put_float)
    NEXT("wait_ms", ARG_WAIT, put_float)
    if (status == WROTE) {
        status = PUT_FIELD(out, "},\"bytes\":", args[ARG_BYTES], put_int);
    }
    NEXT("sha256", ARG_SHA256, put_string)
    NEXT("content_type", ARG_CONTENT_TYPE, put_string)
    NEXT("protocol", ARG_PROTOCOL, put_string)
    if (status == WROTE) {
        status = put_body(out, args);
    }
    if (status == WROTE) {
        status = PUT_LITERAL(out, ",\"meta\":null") < 0 ? FAILED : WROTE;
    }
    NEXT("started_at", ARG_STARTED_AT, put_string)
#undef NEXT
    if (status == WROTE && PUT_LITERAL(out, "}\n") < 0) {
        status = FAILED;
    }
    return status;
}

static PyObject *append_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Out out;
    int status;
    Py_ssize_t start;
    PyObject *buffer;
    (void)module;
    if (nargs != ARG_COUNT || !PyByteArray_CheckExact(args[ARG_BUFFER])) {
        PyErr_SetString(PyExc_TypeError,
                        "append_record(buffer: bytearray, ...) takes the record's 21 fields");
        return NULL;
    }
    buffer = args[ARG_BUFFER];
    out.data = out.inline_space;
    out.len = 0;
    out.cap = (Py_ssize_t)sizeof out.inline_space;
    status = put_record(&out, args);
    if (status == WROTE) {
        start = PyByteArray_GET_SIZE(buffer);
        if (PyByteArray_Resize(buffer, start + out.len) < 0) {
            status = FAILED;
        } else {
            memcpy(PyByteArray_AS_STRING(buffer) + start, out.data, (size_t)out.len);
        }
    }
    if (out.data != out.inline_space) {
        PyMem_Free(out.data);
    }
    if (status == FAILED) {
        return NULL;
    }
    return PyBool_FromLong(status == WROTE);
}

static PyMethodDef methods[] = {
    {"append_record", (PyCFunction)(void (*)(void))append_record, METH_FASTCALL,
     "Append one record's JSON line to a bytearray; False (buffer unchanged) for orjson's"
     " cases."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asyncfetch.sinks.record_json",
    "Records written as JSON lines without building a dict (see record_json.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_record_json(void)
{
    fill_escape_table();
    return PyModule_Create(&module_def);
}
