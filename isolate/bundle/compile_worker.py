# Runs under the BUNDLED interpreter (CPython 3.8+), not in the controller:
#   python -B -s -E compile_worker.py
# A worker kept running by isolate.bundle.bytecode.Compiler: each line of its standard
# input is a JSON object {"jobs": [[source, pyc, dfile, cache_file], ...], "link": bool};
# it writes the unchecked-hash .pyc files and answers with one line, the number of
# sources that are not Python 3 source (and so got no byte code). It ends at the end of
# its input.
#
# With "link" (the pyc files go into a private staging directory, bound for the store
# of installed wheels), each .pyc is written in place and the cache gets a hard link
# to it; else (the pyc files go into a bundle) each is written to a temporary file and
# renamed, and the cache gets a copy of its own.
#
# Byte code is made reproducible: marshal's output depends on reference counts, which
# depend on what else the process compiled before. Round-tripping the code object
# through marshal version 2 (which has no back-references) rebuilds it with counts that
# depend on its structure alone; the final marshal (current version) is then the same
# in any process, whatever it compiled before.
import importlib.util
import json
import marshal
import os
import sys
import warnings

FLAGS_UNCHECKED_HASH = (1).to_bytes(4, "little")


def write(path, data):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_in_place(path, data):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def link_or_write(pyc, cached, data):
    d = os.path.dirname(cached)
    if d:
        os.makedirs(d, exist_ok=True)
    try:
        os.link(pyc, cached)  # whole at once: the file is written and closed
    except FileExistsError:
        pass  # another build put the same bytes there
    except OSError:
        write(cached, data)  # another file system, or no hard links there


def run(jobs, link):
    magic = importlib.util.MAGIC_NUMBER
    failed = 0
    for src, pyc, dfile, cached in jobs:
        with open(src, "rb") as f:
            source = f.read()
        try:
            code = compile(source, dfile, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            failed += 1  # like compileall: such files are data, or for another Python
            continue
        code = marshal.loads(marshal.dumps(code, 2))
        data = magic + FLAGS_UNCHECKED_HASH + importlib.util.source_hash(source) + \
            marshal.dumps(code)
        if link:
            write_in_place(pyc, data)
            link_or_write(pyc, cached, data)
        else:
            write(pyc, data)
            write(cached, data)
    return failed


def main():
    # compile() warns about what it reads (invalid escapes, ...): that is the source's
    # business, and nobody reads this worker's standard error unless it fails
    warnings.simplefilter("ignore")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.write("%d\n" % run(request["jobs"], request["link"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
