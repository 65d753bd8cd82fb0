"""
Runs `ansible-inventory -i SOURCE --list` for every SOURCE on the command line in one Python process (ansible-core's
own InventoryCLI, the code behind /usr/bin/ansible-inventory), so that the corpus test pays Ansible's start-up
once. Prints one JSON object: {SOURCE: {"list": <the --list JSON>} or {"error": "..."}}. Parses only: no
inventory script or plugin is enabled (ANSIBLE_INVENTORY_ENABLED is set by the caller).
"""
import contextlib
import io
import json
import sys

from ansible import context
from ansible.cli.inventory import InventoryCLI
from ansible.utils.context_objects import CLIArgs, GlobalCLIArgs

out = {}
for source in sys.argv[1:]:
    buf = io.StringIO()
    err = io.StringIO()
    try:
        # The CLI keeps its options in a process-wide singleton: forget the previous source's.
        GlobalCLIArgs._Singleton__instance = None
        context.CLIARGS = CLIArgs({})
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            try:
                rc = InventoryCLI(['ansible-inventory', '-i', source, '--list']).run()
            except SystemExit as e:  # the CLI exits once it has printed
                rc = e.code
        out[source] = {'list': json.loads(buf.getvalue())} if not rc else {'error': err.getvalue() or 'rc %s' % rc}
    except Exception as e:  # AnsibleError and the like: the source is invalid for Ansible too
        out[source] = {'error': '%s: %s %s' % (type(e).__name__, e, err.getvalue())}
    out[source]['warnings'] = err.getvalue()
print(json.dumps(out))
