/* SHA-256 hex digests of short byte strings, on the x86 SHA extensions.

   Every request takes two digests: its id (the sha256 of "METHOD url\n...", cut to 24 hex
   digits) and its record's body digest. Through hashlib each cost 0.35 to 0.65 us on the
   benchmark's requests, most of it OpenSSL 3's per-call work (fetching the algorithm,
   allocating and wiping a context) and not the hashing; together they were about a tenth
   of the fast engine's CPU per request. Here one call hashes with the CPU's SHA
   instructions (the round structure of Intel's published SHA-NI example) and writes the
   hex string directly.

   sha256_hex(data, digits=64, /) -> str   (data: any bytes-like object; digits: 1..64,
                                            the leading hex digits wanted)

   The function exists only where it can run: an x86-64 CPU with SHA, SSSE3 and SSE4.1
   (checked when the module loads). Elsewhere the module has no such attribute and the
   caller keeps hashlib (see _hashing.py). tests/test_sha256_hex.py holds it to hashlib on
   every length up to several blocks and on random data.
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_SHA_NI_BUILD 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#ifdef HAVE_SHA_NI_BUILD

static const uint32_t ROUND_CONSTANTS[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static const uint32_t INITIAL_STATE[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define SHA_TARGET __attribute__((target("sha,ssse3,sse4.1")))

/* Hash `blocks` 64-byte blocks into state[8]. Rounds go four at a time (g = 0..15); the
   message schedule lives in four registers, msg[g % 4] holding words 4g..4g+3. */
SHA_TARGET static void compress(uint32_t state[8], const uint8_t *data, size_t blocks)
{
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);              /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);        /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8); /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);     /* CDGH */

    for (; blocks > 0; blocks--, data += 64) {
        const __m128i abef_before = state0, cdgh_before = state1;
        __m128i msg[4];
#if defined(__clang__)
#pragma unroll
#else
#pragma GCC unroll 16
#endif
        for (int g = 0; g < 16; g++) {
            if (g < 4)
                msg[g] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(data + 16 * g)), byte_swap);
            __m128i words = _mm_add_epi32(
                msg[g % 4], _mm_loadu_si128((const __m128i *)&ROUND_CONSTANTS[4 * g]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, words);
            if (g >= 3 && g < 15) {
                int n = (g + 1) % 4, p = (g + 3) % 4;
                msg[n] = _mm_add_epi32(msg[n], _mm_alignr_epi8(msg[g % 4], msg[p], 4));
                msg[n] = _mm_sha256msg2_epu32(msg[n], msg[g % 4]);
            }
            words = _mm_shuffle_epi32(words, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, words);
            if (g >= 1 && g < 13) {
                int p = (g + 3) % 4;
                msg[p] = _mm_sha256msg1_epu32(msg[p], msg[g % 4]);
            }
        }
        state0 = _mm_add_epi32(state0, abef_before);
        state1 = _mm_add_epi32(state1, cdgh_before);
    }

    tmp = _mm_shuffle_epi32(state0, 0x1B);       /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);    /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0); /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);    /* ABEF */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

static void sha256(const uint8_t *data, size_t length, uint8_t digest[32])
{
    uint32_t state[8];
    memcpy(state, INITIAL_STATE, sizeof state);
    size_t whole = length / 64;
    compress(state, data, whole);

    /* The tail, the 0x80 marker and the length in bits fill one block or two. */
    uint8_t last[128] = {0};
    size_t rest = length - whole * 64;
    memcpy(last, data + whole * 64, rest);
    last[rest] = 0x80;
    size_t last_blocks = rest < 56 ? 1 : 2;
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++)
        last[last_blocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(state, last, last_blocks);

    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)state[i];
    }
}

static PyObject *sha256_hex(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "sha256_hex(data, digits=64, /)");
        return NULL;
    }
    Py_ssize_t digits = 64;
    if (nargs == 2) {
        digits = PyLong_AsSsize_t(args[1]);
        if (digits == -1 && PyErr_Occurred())
            return NULL;
        if (digits < 1 || digits > 64) {
            PyErr_SetString(PyExc_ValueError, "digits must be 1 to 64");
            return NULL;
        }
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uint8_t digest[32];
    sha256((const uint8_t *)view.buf, (size_t)view.len, digest);
    PyBuffer_Release(&view);

    static const char hex_digits[] = "0123456789abcdef";
    PyObject *text = PyUnicode_New(digits, 127);
    if (text == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < digits; i++) {
        uint8_t byte = digest[i / 2];
        out[i] = (Py_UCS1)hex_digits[i % 2 ? byte & 15 : byte >> 4];
    }
    return text;
}

static int cpu_has_sha_ni(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    int ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return 0;
    return ssse3 && sse41 && ((ebx >> 29) & 1);
}

static PyMethodDef sha_methods[] = {
    {"sha256_hex", (PyCFunction)(void (*)(void))sha256_hex, METH_FASTCALL,
     "The first `digits` (default 64) hex digits of data's SHA-256."},
    {NULL, NULL, 0, NULL},
};

#endif /* HAVE_SHA_NI_BUILD */

static PyMethodDef no_methods[] = {{NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asyncfetch.sha256_hex",
    "SHA-256 hex digests on the CPU's SHA instructions, where it has them (sha256_hex.c).",
    -1, no_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_sha256_hex(void)
{
    PyObject *module = PyModule_Create(&module_def);
#ifdef HAVE_SHA_NI_BUILD
    if (module != NULL && cpu_has_sha_ni() && PyModule_AddFunctions(module, sha_methods) < 0)
        Py_CLEAR(module);
#endif
    return module;
}
