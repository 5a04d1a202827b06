# Runs under the BUNDLED interpreter (CPython 3.8+), not in the controller:
#   python -B -s -E compile_worker.py
# A worker kept running by isolate.bundle.bytecode.Compiler: each line of its standard
# input is a JSON object {"jobs": [[source, pyc, dfile, cache_file], ...], "private":
# bool}; it writes the unchecked-hash .pyc files and their copies in the cache, and
# answers with one line, the number of sources that are not Python 3 source (and so got
# no byte code). It ends at the end of its input.
#
# A .pyc goes to a temporary file renamed over its place, unless "private" says that
# nothing else reads or links that place yet (a staging directory of the build's own):
# then it is written in place. The cache's copy always goes through a temporary file.
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


def run(jobs, private):
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
        if private:
            write_in_place(pyc, data)
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
        sys.stdout.write("%d\n" % run(request["jobs"], request["private"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
