"""Tributary's build macros: one place for language level and warning flags."""

# C11 everywhere, strict warnings as errors (STYLE.md 3.9).
TRB_C_COPTS = [
    "-std=c11",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wold-style-definition",
    "-Wshadow",
    "-Wvla",
    "-Wformat=2",
    "-Wundef",
    "-Wpointer-arith",
    # Status and log messages are bounded buffers; truncation is intended.
    "-Wno-format-truncation",
]

# GoogleTest calls the C code through its extern "C" headers.
TRB_CC_COPTS = [
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-missing-field-initializers",
]

def trb_c_library(name, copts = [], **kwargs):
    """A C11 library with the project's warning flags."""
    native.cc_library(name = name, copts = TRB_C_COPTS + copts, **kwargs)

def trb_c_binary(name, copts = [], **kwargs):
    """A C11 binary with the project's warning flags."""
    native.cc_binary(name = name, copts = TRB_C_COPTS + copts, **kwargs)

def trb_cc_test(name, deps = [], copts = [], size = "small", **kwargs):
    """A GoogleTest test (C++17) linked with gtest_main."""
    native.cc_test(
        name = name,
        copts = TRB_CC_COPTS + copts,
        deps = deps + [
            "//third_party:gtest_main",
            "//tests/testutil:lsan_suppressions",
        ],
        size = size,
        **kwargs
    )
