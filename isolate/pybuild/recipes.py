"""How each pinned source is built: static, position-independent, with the cross compiler.

Every dependency is installed into one prefix (``deps/``) as a static library with its
headers and, where it has one, a pkg-config file; CPython's configure then finds them
there (``PKG_CONFIG_LIBDIR``) and links them into its extension modules, so the only
shared libraries the interpreter needs are glibc's. A recipe is data: a list of steps,
each a command with its working directory, so the builder runs and logs them the same
way and a test can read them.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    src: Path  # the unpacked source tree
    prefix: Path  # where dependencies are installed
    jobs: int
    cflags: str  # -O2 -fPIC and the prefix maps
    tools: Mapping[str, str]  # CC, CXX, AR, RANLIB: the cross compiler's wrappers
    arch: str = "x86_64"
    host_cc: str = "gcc"  # the machine's, for generators that only run during the build
    destdir: Path | None = None  # CPython's staging directory (make install DESTDIR=)


ISOLATED_MAIN = Path(__file__).resolve().parent.parent / "bundle" / "csrc" / "isolated_main.c"
BUILD_EPOCH = 946684800  # 2000-01-01: every mtime, and the build date CPython reports
BUILD_DATE, BUILD_TIME = "Jan  1 2000", "00:00:00"
INSTALL_PREFIX = "/install"  # configure's --prefix; the tree is relocatable

# Order matters: a dependency comes before what needs it; CPython last.
ORDER = ("zlib", "bzip2", "xz", "libffi", "mpdecimal", "expat", "libuuid", "sqlite", "openssl",
         "cpython")

# SQLite's features as CPython's own release builds have them.
SQLITE_DEFINES = (
    "-DSQLITE_ENABLE_FTS3", "-DSQLITE_ENABLE_FTS3_PARENTHESIS", "-DSQLITE_ENABLE_FTS4",
    "-DSQLITE_ENABLE_FTS5", "-DSQLITE_ENABLE_RTREE", "-DSQLITE_ENABLE_MATH_FUNCTIONS",
    "-DSQLITE_ENABLE_DBSTAT_VTAB", "-DSQLITE_ENABLE_COLUMN_METADATA",
    "-DSQLITE_ENABLE_LOAD_EXTENSION", "-DSQLITE_THREADSAFE=1", "-DSQLITE_OMIT_DEPRECATED",
)


def _make(c: Context, *targets: str, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> Step:
    return Step(argv=("make", f"-j{c.jobs}", *targets), cwd=cwd or c.src, env=env or {})


def _configure(c: Context, *args: str, env: Mapping[str, str] | None = None) -> Step:
    return Step(argv=("./configure", f"--prefix={c.prefix}", *args), cwd=c.src, env=env or {})


def zlib(c: Context) -> list[Step]:
    return [_configure(c, "--static"), _make(c, "libz.a"),
            Step(argv=("make", "install"), cwd=c.src)]


def bzip2(c: Context) -> list[Step]:
    # No configure; its Makefile takes the tools on the command line.
    inc, lib = c.prefix / "include", c.prefix / "lib"
    return [
        Step(argv=("make", f"-j{c.jobs}", "libbz2.a", f"CC={c.tools['CC']}",
                   f"AR={c.tools['AR']}", f"RANLIB={c.tools['RANLIB']}",
                   f"CFLAGS={c.cflags} -D_FILE_OFFSET_BITS=64"), cwd=c.src),
        Step(argv=("mkdir", "-p", str(inc), str(lib)), cwd=c.src),
        Step(argv=("cp", "bzlib.h", str(inc)), cwd=c.src),
        Step(argv=("cp", "libbz2.a", str(lib)), cwd=c.src),
    ]


def xz(c: Context) -> list[Step]:
    return [
        _configure(c, "--disable-shared", "--enable-static", "--disable-xz", "--disable-xzdec",
                   "--disable-lzmadec", "--disable-lzmainfo", "--disable-lzma-links",
                   "--disable-scripts", "--disable-doc", "--disable-nls",
                   "--disable-microlzma", "--disable-lzip-decoder"),
        _make(c, cwd=c.src / "src" / "liblzma"),
        Step(argv=("make", "install"), cwd=c.src / "src" / "liblzma"),
    ]


def libffi(c: Context) -> list[Step]:
    return [
        _configure(c, "--disable-shared", "--enable-static", "--disable-docs",
                   "--disable-multi-os-directory", "--with-pic",
                   # 3.4.4's static trampolines call an undeclared function, which
                   # clang refuses; CPython does not use them.
                   "--disable-exec-static-tramp"),
        _make(c), Step(argv=("make", "install"), cwd=c.src),
    ]


def mpdecimal(c: Context) -> list[Step]:
    return [_configure(c, "--disable-shared", "--disable-cxx"),
            _make(c, cwd=c.src / "libmpdec"),
            Step(argv=("make", "install"), cwd=c.src)]


def expat(c: Context) -> list[Step]:
    # A git export too; its CMake build needs no generated files.
    build = c.src / "build"
    return [
        Step(argv=("cmake", "-S", str(c.src / "expat"), "-B", str(build),
                   "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_INSTALL_PREFIX={c.prefix}",
                   "-DCMAKE_INSTALL_LIBDIR=lib", "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
                   f"-DCMAKE_C_FLAGS={c.cflags}", "-DEXPAT_SHARED_LIBS=OFF",
                   "-DEXPAT_BUILD_TOOLS=OFF", "-DEXPAT_BUILD_EXAMPLES=OFF",
                   "-DEXPAT_BUILD_TESTS=OFF", "-DEXPAT_BUILD_DOCS=OFF",
                   "-DEXPAT_BUILD_PKGCONFIG=ON"), cwd=c.src),
        Step(argv=("cmake", "--build", str(build), "-j", str(c.jobs)), cwd=c.src),
        Step(argv=("cmake", "--install", str(build)), cwd=c.src),
    ]


def libuuid(c: Context) -> list[Step]:
    # libuuid keeps its state directories as strings (the clock file, uuidd's socket):
    # the system's, with the prefix named /deps and installed with DESTDIR, as OpenSSL.
    return [
        Step(argv=("./configure", f"--prefix=/{c.prefix.name}", "--localstatedir=/var",
                   "--runstatedir=/run", "--disable-shared", "--enable-static",
                   "--disable-all-programs", "--enable-libuuid", "--disable-nls",
                   "--without-python", "--without-systemd", "--without-udev",
                   "--without-ncursesw", "--without-tinfo", "--without-readline",
                   "--disable-bash-completion", "--disable-asciidoc",
                   "--disable-liblastlog2", "--disable-poman"), cwd=c.src),
        _make(c, "libuuid.la"),
        Step(argv=("make", "install-uuidincHEADERS", "install-usrlib_execLTLIBRARIES",
                   "install-pkgconfigDATA", f"DESTDIR={c.prefix.parent}"), cwd=c.src),
        _pc_prefix(c, "uuid.pc"),
    ]


def _pc_prefix(c: Context, *names: str) -> Step:
    """Point pkg-config files installed with DESTDIR at where the files really are."""
    files = [str(c.prefix / "lib" / "pkgconfig" / n) for n in names]
    n = c.prefix.name  # every path that starts with /deps: prefix=, includedir=, -I, -L
    return Step(argv=("sed", "-E", "-i", f"s#(=|-I|-L)/{n}(/|$| )#\\1{c.prefix}\\2#g",
                      *files), cwd=c.src)


def sqlite(c: Context) -> list[Step]:
    # The full source tree: its Makefile makes the amalgamation (with tclsh, using the
    # machine's compiler for the generators only); the amalgamation is then compiled
    # with the cross compiler into a static library.
    inc, lib = c.prefix / "include", c.prefix / "lib"
    version = (c.src / "VERSION").read_text().strip() if (c.src / "VERSION").exists() else ""
    pc = (f"prefix={c.prefix}\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n\n"
          f"Name: SQLite\nDescription: SQL database engine\nVersion: {version}\n"
          "Libs: -L${libdir} -lsqlite3\nLibs.private: -lm -ldl -lpthread\n"
          "Cflags: -I${includedir}\n")
    return [
        Step(argv=("./configure", "--disable-tcl", "--disable-readline", "--disable-shared"),
             cwd=c.src, env={"CC": c.host_cc, "CFLAGS": "-O1"}),
        Step(argv=("make", "sqlite3.c", "sqlite3.h"), cwd=c.src, env={"CC": c.host_cc}),
        Step(argv=("sh", "-c", f'exec "$CC" {c.cflags} {" ".join(SQLITE_DEFINES)} '
                   "-c sqlite3.c -o sqlite3-static.o"), cwd=c.src),
        Step(argv=("sh", "-c", 'exec "$AR" rcs libsqlite3.a sqlite3-static.o'), cwd=c.src),
        Step(argv=("mkdir", "-p", str(inc), str(lib / "pkgconfig")), cwd=c.src),
        Step(argv=("cp", "sqlite3.h", "src/sqlite3ext.h", str(inc)), cwd=c.src),
        Step(argv=("cp", "libsqlite3.a", str(lib)), cwd=c.src),
        Step(argv=("sh", "-c", f"cat > '{lib / 'pkgconfig' / 'sqlite3.pc'}' <<'EOF'\n{pc}EOF\n"),
             cwd=c.src),
    ]


def openssl(c: Context) -> list[Step]:
    # Only the libraries (no apps, tests or docs). openssldir /etc/ssl: where Debian,
    # Ubuntu and (through its symlinks) RHEL keep the system's CA certificates.
    # libcrypto keeps its prefix as a string (the modules directory): configure it as
    # /deps and install with DESTDIR into the real prefix, so no build path is kept.
    return [
        Step(argv=("perl", "./Configure", f"linux-{c.arch}", "no-shared", "no-tests",
                   "no-docs", "no-apps", "no-legacy", "no-module", "no-engine", "no-dso",
                   "no-afalgeng", f"--prefix=/{c.prefix.name}", "--libdir=lib",
                   "--openssldir=/etc/ssl", *c.cflags.split()), cwd=c.src),
        _make(c, "build_libs"),
        Step(argv=("make", "install_dev", f"DESTDIR={c.prefix.parent}"), cwd=c.src),
        _pc_prefix(c, "libcrypto.pc", "libssl.pc", "openssl.pc"),
    ]


def patch_cpython(src: Path) -> None:
    """The isolated main(), and no build date in ``sys.version``."""
    shutil.copyfile(ISOLATED_MAIN, src / "Programs" / "python.c")
    info = src / "Modules" / "getbuildinfo.c"
    text = info.read_text()
    text = text.replace("#ifndef DATE\n",
                        f'#define DATE "{BUILD_DATE}"\n#define TIME "{BUILD_TIME}"\n'
                        "#ifndef DATE\n", 1)
    info.write_text(text)


def cpython(ctx: Context) -> list[Step]:
    deps, stage = ctx.prefix, ctx.destdir
    env = {
        "CPPFLAGS": f"-I{deps}/include",
        "LDFLAGS": f"-L{deps}/lib -Wl,-s",
        "PKG_CONFIG_LIBDIR": f"{deps}/lib/pkgconfig",
        "PKG_CONFIG_PATH": "",
        "CFLAGS": ctx.cflags.replace("-fPIC", "").strip(),
    }
    configure = Step(argv=(
        "./configure", f"--prefix={INSTALL_PREFIX}", "--without-ensurepip",
        "--with-system-expat", "--with-system-libmpdec", "--enable-loadable-sqlite-extensions",
        f"--with-openssl={deps}", "--with-openssl-rpath=no", "--without-readline",
        "--with-lto=no", "--without-static-libpython",
        # Not available for an isolated runtime (no ncurses, gdbm or Tk here).
        "py_cv_module__curses=n/a", "py_cv_module__curses_panel=n/a",
        "py_cv_module__gdbm=n/a", "py_cv_module__dbm=n/a", "py_cv_module_readline=n/a",
        "py_cv_module__tkinter=n/a",
    ), cwd=ctx.src, env=env)
    return [
        configure,
        Step(argv=("make", f"-j{ctx.jobs}"), cwd=ctx.src, env=env),
        # PYTHON_FOR_BUILD=true: no byte code at install (the bundle compiles its own).
        Step(argv=("make", "install", f"DESTDIR={stage}", "PYTHON_FOR_BUILD=true"),
                     cwd=ctx.src, env=env),
    ]
