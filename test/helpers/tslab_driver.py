"""Drive a real tslab kernel as Jupyter does, for the kit's notebook tests.

Reads JSON from stdin: {"cwd": DIR, "steps": [{"run": CODE} | {"complete": CODE}]}.
Writes one JSON object: {"steps": [{"outputs": [[stream, text], ...]} | {"matches": [...]}]}.
Runs on Debian's /usr/bin/python3 with jupyter_client; JUPYTER_PATH must lead to the tslab kernelspec.
"""
import json
import sys
import time

from jupyter_client.manager import start_new_kernel


def main():
    spec = json.load(sys.stdin)
    km, kc = start_new_kernel(kernel_name='tslab', cwd=spec['cwd'])
    results = []
    try:
        for step in spec['steps']:
            if 'complete' in step:
                code = step['complete']
                msg_id = kc.complete(code, len(code))
                reply = reply_to(kc, msg_id)
                results.append({'matches': reply['content'].get('matches', [])})
                continue
            msg_id = kc.execute(step['run'], stop_on_error=False)
            outputs = []
            while True:
                m = kc.get_iopub_msg(timeout=120)
                if m['parent_header'].get('msg_id') != msg_id:
                    continue
                kind, c = m['msg_type'], m['content']
                if kind == 'stream':
                    outputs.append([c['name'], c['text']])
                elif kind in ('execute_result', 'display_data'):
                    outputs.append(['display', c['data'].get('text/html') or c['data'].get('text/plain', '')])
                elif kind == 'error':
                    outputs.append(['error', c['ename'] + ': ' + c['evalue']])
                elif kind == 'status' and c['execution_state'] == 'idle':
                    break
            reply = reply_to(kc, msg_id)
            results.append({'outputs': outputs, 'status': reply['content'].get('status')})
            if reply['content'].get('status') != 'ok':
                # tslab drops requests that arrive within 200 ms of a failed one.
                time.sleep(0.3)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    json.dump({'steps': results, 'kernelPid': None}, sys.stdout)


def reply_to(kc, msg_id):
    while True:
        r = kc.get_shell_msg(timeout=120)
        if r['parent_header'].get('msg_id') == msg_id:
            return r


if __name__ == '__main__':
    main()
