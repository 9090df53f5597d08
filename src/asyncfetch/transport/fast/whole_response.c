/* One-call parse of a whole, simple HTTP/1.1 response: the fast transport's common case.

   llhttp (through httptools) reports a response as a callback per header field, each a
   call into Python with two new bytes objects; for a small response that was a tenth of
   a request's cost. Most responses a crawler sees arrive in one read: a head, a
   Content-Length, the body and nothing after it. whole_response() recognises exactly that
   case in one pass and hands back the decoded pieces; for anything else (a head or body
   still to come, chunked or close-delimited bodies, 1xx, 204 and 304, Upgrade, repeated
   framing headers, bare LF, control bytes, whitespace llhttp would have to trim, limits
   exceeded) it returns None and the caller feeds llhttp as before. It accepts a strict
   subset of what llhttp accepts and reports what llhttp would report, so llhttp stays the
   only judge of anything unusual; tests/test_whole_response.py compares the two.

   whole_response(data: bytes, max_body: int, max_header_bytes: int, max_header_count: int)
     -> (status, keep_alive, headers, content_encoding, body) | None
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>

/* More fields than this go to llhttp, which enforces the configured limit itself. */
#define MAX_FIELDS 64
/* Content-Length digits: 18 cannot overflow a 64-bit integer. */
#define MAX_LENGTH_DIGITS 18

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    const char *value;
    Py_ssize_t value_len;
    int ascii; /* the value has no byte above 0x7F */
} Field;

typedef struct {
    int status;
    int has_length;
    long long length;
    int connection_close;
    int connection_keep_alive;
    const char *encoding;
    Py_ssize_t encoding_len;
    Field fields[MAX_FIELDS];
    int count;
    Py_ssize_t head_len;
} Head;

/* Byte classes, filled once at import: RFC 9110 tchar (the only bytes of a field name)
   and field-value bytes (VCHAR, obs-text, SP and HTAB: no other control byte, no DEL). */
#define TCHAR 1
#define VALUE 2
static unsigned char byte_class[256];

static void fill_byte_classes(void)
{
    const char *extra_tchar = "!#$%&'*+-.^_`|~";
    int c;
    for (c = 0; c < 256; c++) {
        int tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c != 0 && strchr(extra_tchar, c) != NULL);
        int value = c == '\t' || (c >= 0x20 && c != 0x7F);
        byte_class[c] = (unsigned char)((tchar ? TCHAR : 0) | (value ? VALUE : 0));
    }
}

static int same_lower(const char *text, Py_ssize_t len, const char *lower)
{
    Py_ssize_t i;
    if ((Py_ssize_t)strlen(lower) != len) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        }
        if (c != (unsigned char)lower[i]) {
            return 0;
        }
    }
    return 1;
}

/* "HTTP/1.1 DDD reason\r\n": returns the offset after it, or -1 for llhttp to judge. */
static Py_ssize_t status_line(const char *p, Py_ssize_t n, Head *head)
{
    Py_ssize_t i;
    /* HTTP/1.0 answers are rare: llhttp's, which also tells the record their version. */
    if (n < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0) {
        return -1;
    }
    for (i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
    }
    head->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    /* 1xx, 204 and 304 have no body and are rare: llhttp's. */
    if (head->status < 200 || head->status > 599 || head->status == 204 ||
        head->status == 304 || p[12] != ' ') {
        return -1;
    }
    for (i = 13; i < n && p[i] != '\r'; i++) {
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7E) {
            return -1;
        }
    }
    if (i + 1 >= n || p[i + 1] != '\n') {
        return -1;
    }
    return i + 2;
}

static int parse_length(const char *value, Py_ssize_t len, long long *out)
{
    Py_ssize_t i;
    long long total = 0;
    if (len > MAX_LENGTH_DIGITS) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return 0;
        }
        total = total * 10 + (value[i] - '0');
    }
    *out = total;
    return 1;
}

/* Note what the framing and keep-alive decisions need; 0 means "llhttp's case". */
static int note_field(Head *head, const Field *f)
{
    switch (f->name_len) {
    case 7:
        return !same_lower(f->name, f->name_len, "upgrade");
    case 10:
        if (!same_lower(f->name, f->name_len, "connection")) {
            return 1;
        }
        if (head->connection_close || head->connection_keep_alive) {
            return 0;
        }
        head->connection_close = same_lower(f->value, f->value_len, "close");
        head->connection_keep_alive = same_lower(f->value, f->value_len, "keep-alive");
        return head->connection_close || head->connection_keep_alive;
    case 14:
        if (!same_lower(f->name, f->name_len, "content-length")) {
            return 1;
        }
        if (head->has_length) {
            return 0;
        }
        head->has_length = 1;
        return parse_length(f->value, f->value_len, &head->length);
    case 16:
        if (same_lower(f->name, f->name_len, "proxy-connection")) {
            return 0;
        }
        if (!same_lower(f->name, f->name_len, "content-encoding")) {
            return 1;
        }
        if (head->encoding != NULL) {
            return 0;
        }
        head->encoding = f->value;
        head->encoding_len = f->value_len;
        return 1;
    case 17:
        return !same_lower(f->name, f->name_len, "transfer-encoding");
    default:
        return 1;
    }
}

/* One "name: value\r\n" line at p; returns the offset after it, or -1. */
static Py_ssize_t field_line(const char *p, Py_ssize_t n, Field *f)
{
    Py_ssize_t i = 0, start;
    unsigned char high;
    while (i < n && (byte_class[(unsigned char)p[i]] & TCHAR)) {
        i++;
    }
    if (i == 0 || i >= n || p[i] != ':') {
        return -1;
    }
    f->name = p;
    f->name_len = i;
    i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    start = i;
    high = 0;
    while (i < n && (byte_class[(unsigned char)p[i]] & VALUE)) {
        high |= (unsigned char)p[i];
        i++;
    }
    f->ascii = (high & 0x80) == 0;
    /* Empty values and trailing whitespace are llhttp's to report. */
    if (i == start || p[i - 1] == ' ' || p[i - 1] == '\t') {
        return -1;
    }
    if (i + 1 >= n || p[i] != '\r' || p[i + 1] != '\n') {
        return -1;
    }
    f->value = p + start;
    f->value_len = i - start;
    return i + 2;
}

/* Fill head from data; 0 when the response is not the simple, complete kind. */
static int scan(const char *data, Py_ssize_t n, Py_ssize_t max_body,
                Py_ssize_t max_header_bytes, Py_ssize_t max_header_count, Head *head)
{
    Py_ssize_t at, used, header_bytes = 0;
    memset(head, 0, offsetof(Head, fields));
    head->count = 0;
    at = status_line(data, n, head);
    if (at < 0) {
        return 0;
    }
    for (;;) {
        Field *f;
        if (n - at >= 2 && data[at] == '\r' && data[at + 1] == '\n') {
            at += 2;
            break;
        }
        if (head->count >= MAX_FIELDS || head->count >= max_header_count) {
            return 0;
        }
        f = &head->fields[head->count];
        used = field_line(data + at, n - at, f);
        if (used < 0) {
            return 0;
        }
        /* The same count the llhttp path keeps, so the same heads are refused. */
        header_bytes += f->name_len + f->value_len + 4;
        if (header_bytes > max_header_bytes || !note_field(head, f)) {
            return 0;
        }
        head->count++;
        at += used;
    }
    if (!head->has_length || head->length > (long long)max_body ||
        head->length != (long long)(n - at)) {
        return 0;
    }
    head->head_len = at;
    return 1;
}

static PyObject *ascii_text(const char *text, Py_ssize_t len)
{
    PyObject *s = PyUnicode_New(len, 127);
    if (s != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(s), text, (size_t)len);
    }
    return s;
}

/* As Connection.on_header decodes: UTF-8, else Latin-1 (lossless for legacy bytes). */
static PyObject *value_text(const Field *f)
{
    PyObject *s;
    if (f->ascii) {
        return ascii_text(f->value, f->value_len);
    }
    s = PyUnicode_DecodeUTF8(f->value, f->value_len, NULL);
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        s = PyUnicode_DecodeLatin1(f->value, f->value_len, NULL);
    }
    return s;
}

static PyObject *field_list(const Head *head)
{
    int i;
    PyObject *fields = PyList_New(head->count);
    if (fields == NULL) {
        return NULL;
    }
    for (i = 0; i < head->count; i++) {
        const Field *f = &head->fields[i];
        PyObject *name = ascii_text(f->name, f->name_len);
        PyObject *value = name == NULL ? NULL : value_text(f);
        PyObject *pair = value == NULL ? NULL : PyTuple_New(2);
        if (pair == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(value);
            Py_DECREF(fields);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, name); /* the tuple takes both references */
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(fields, i, pair);
    }
    return fields;
}

/* (status, keep_alive, fields, encoding, body); takes the three references it is given. */
static PyObject *pack(const Head *head, PyObject *fields, PyObject *encoding, PyObject *body)
{
    PyObject *status = PyLong_FromLong(head->status);
    PyObject *result = status == NULL ? NULL : PyTuple_New(5);
    if (result == NULL) {
        Py_XDECREF(status);
        Py_DECREF(fields);
        Py_DECREF(encoding);
        Py_DECREF(body);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, status);
    /* llhttp_should_keep_alive for a length-framed HTTP/1.1 response (the only version
       taken here): kept alive unless it says close. */
    PyTuple_SET_ITEM(result, 1, PyBool_FromLong(!head->connection_close));
    PyTuple_SET_ITEM(result, 2, fields);
    PyTuple_SET_ITEM(result, 3, encoding);
    PyTuple_SET_ITEM(result, 4, body);
    return result;
}

static PyObject *whole_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Head head;
    Py_ssize_t limits[3];
    int i;
    PyObject *fields, *encoding, *body;
    (void)module;
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "whole_response(data: bytes, max_body: int, max_header_bytes: int, "
                        "max_header_count: int)");
        return NULL;
    }
    for (i = 0; i < 3; i++) {
        limits[i] = PyLong_AsSsize_t(args[i + 1]);
        if (limits[i] == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (!scan(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), limits[0], limits[1],
              limits[2], &head)) {
        Py_RETURN_NONE;
    }
    fields = field_list(&head);
    if (fields == NULL) {
        return NULL;
    }
    if (head.encoding == NULL) {
        encoding = Py_NewRef(Py_None);
    } else {
        encoding = PyBytes_FromStringAndSize(head.encoding, head.encoding_len);
    }
    body = encoding == NULL ? NULL
                            : PyBytes_FromStringAndSize(PyBytes_AS_STRING(args[0]) + head.head_len,
                                                        (Py_ssize_t)head.length);
    if (body == NULL) {
        Py_DECREF(fields);
        Py_XDECREF(encoding);
        return NULL;
    }
    return pack(&head, fields, encoding, body);
}

static PyMethodDef methods[] = {
    {"whole_response", (PyCFunction)(void (*)(void))whole_response, METH_FASTCALL,
     "Parse a complete, simple HTTP/1.1 response in one pass; None for llhttp's cases."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asyncfetch.transport.fast.whole_response",
    "One-pass parse of simple, complete HTTP/1.1 responses (see whole_response.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_whole_response(void)
{
    fill_byte_classes();
    return PyModule_Create(&module_def);
}
