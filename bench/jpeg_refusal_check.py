"""Sends the JPEG cases of bench/write-jpeg-cases.ts to a running swin-serve and checks each
reply against its manifest: a damaged JPEG gets the same 4xx code whichever decoder ran
(nvJPEG on a GPU host, sharp elsewhere), a valid one is classified.

    python3 bench/jpeg_refusal_check.py --url http://127.0.0.1:8080 --dir bench/.images/jpeg-cases

Prints one line per case and a verdict; exits 1 when any reply differs. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f'{url}/classify', data=body, headers={'content-type': 'image/jpeg'})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'{}')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--url', default='http://127.0.0.1:8080')
    p.add_argument('--dir', required=True)
    args = p.parse_args(argv)
    with open(os.path.join(args.dir, 'manifest.json')) as f:
        manifest = json.load(f)
    bad = 0
    for case in manifest:
        with open(os.path.join(args.dir, case['file']), 'rb') as f:
            status, body = post(args.url, f.read())
        want = case['expect']
        got = 'classified' if status == 200 and 'predictions' in body else {'status': status, 'code': body.get('code')}
        ok = got == want
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {case['name']}: {got}" + ('' if ok else f' (want {want})'))
    print(f'jpeg cases: {len(manifest) - bad} passed, {bad} failed')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
