/* main() of a runtime's interpreter (its sys.executable).
 *
 * CPython configured so that the host's environment cannot reach it: every start
 * behaves as if -E and -s were given, whoever starts it (a launcher, subprocess with
 * sys.executable, multiprocessing, os.exec*).  PYTHONHOME, PYTHONPATH, PYTHONSTARTUP,
 * PYTHONSAFEPATH, PYTHONUSERBASE and every other PYTHON* variable are ignored, and so
 * is the user site directory.  Everything else (argument parsing, sys.path[0] for a
 * script) is CPython's own.  Works with CPython 3.8 and newer (PEP 587).
 */
#include <Python.h>

int
main(int argc, char **argv)
{
    PyStatus status;
    PyConfig config;

    PyConfig_InitPythonConfig(&config);
    config.use_environment = 0;     /* -E */
    config.user_site_directory = 0; /* -s */
    status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (PyStatus_Exception(status)) {
        goto fail;
    }
    status = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(status)) {
        goto fail;
    }
    PyConfig_Clear(&config);
    return Py_RunMain();

fail:
    PyConfig_Clear(&config);
    if (PyStatus_IsExit(status)) {
        return status.exitcode;
    }
    Py_ExitStatusException(status);
}
