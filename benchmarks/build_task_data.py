"""Rebuild the offline task sample in quantized_llms/corpus/tasks/ from public packages.

    python benchmarks/build_task_data.py --work /tmp/taskdata-src --n 100

Fetches (package registries only): Debian golang-1.19-src, php-pear, libruby3.1 (apt-get download), lodash 4.17.21 and
react-native 0.72.6 (npm pack), the JPype1 1.7.1 and bigbench 1.0.0 sdists (pip download); Python functions come from
this interpreter's stdlib. Where the bigbench sdist cannot be had, the shipped BIG-bench file is kept.
"""
import argparse, subprocess, sysconfig, tarfile
from pathlib import Path
from quantized_llms.tasks import build_task_data, task_data_dir

PYPI = {'jpype1-1.7.1.tar.gz': 'jpype1==1.7.1', 'bigbench-1.0.0.tar.gz': 'bigbench==1.0.0'}
NPM = ['lodash@4.17.21', 'react-native@0.72.6']
GO_PACKAGES = ['strings', 'bytes', 'strconv', 'sort', 'path', 'unicode', 'bufio', 'container', 'text', 'math/bits', 'net/url',
               'encoding/csv', 'encoding/hex', 'time', 'errors', 'fmt', 'io']
PY_MODULES = ['json', 'email', 'http', 'urllib', 'collections', 'importlib', 'logging', 'xml', 'asyncio', 'concurrent', 'csv.py',
              'textwrap.py', 'shutil.py', 'pathlib.py', 'argparse.py', 'string.py', 'fractions.py', 'statistics.py', 'heapq.py',
              'bisect.py', 'calendar.py', 'difflib.py', 'random.py', 'tempfile.py', 'zipfile.py', 'tarfile.py', 'inspect.py',
              'functools.py', 'os.py', 'posixpath.py']

def fetch(work: Path):
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(['apt-get', 'download', 'golang-1.19-src', 'php-pear', 'libruby3.1'], cwd=work, check=True)
    for deb in work.glob('*.deb'): subprocess.run(['dpkg', '-x', str(deb), 'x'], cwd=work, check=True)
    for pkg in NPM:      # each unpacks to its own folder: npm tarballs all hold `package/`
        name = pkg.replace('@', '-'); (work/name).mkdir(exist_ok=True)
        subprocess.run(['npm', 'pack', pkg], cwd=work/name, check=True)
        with tarfile.open(work/name/f'{name}.tgz') as t: t.extractall(work/name, filter='data')
    for name, req in PYPI.items():
        if not (work/name).exists(): subprocess.run(['pip', 'download', '--no-deps', '--no-binary', ':all:', req, '-d', str(work)])
        if (work/name).exists():
            with tarfile.open(work/name) as t: t.extractall(work, filter='data')

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', default='/tmp/taskdata-src'); ap.add_argument('--out', default=str(task_data_dir()))
    ap.add_argument('--n', type=int, default=100); ap.add_argument('--no-fetch', action='store_true')
    a = ap.parse_args(); work = Path(a.work)
    if not a.no_fetch: fetch(work)
    x, std = work/'x', Path(sysconfig.get_paths()['stdlib'])
    sources = {
        'go': dict(roots=[x/'usr/share/go-1.19/src'/p for p in GO_PACKAGES], repo='golang/go (Go 1.19.8, Debian golang-1.19-src)', license='BSD-3-Clause'),
        'java': [dict(roots=[work/'jpype1-1.7.1/native/jpype_module/src/main/java'], repo='jpype-project/jpype (JPype1 1.7.1 sdist)', license='Apache-2.0'),
                 dict(roots=[work/'react-native-0.72.6/package/ReactAndroid/src/main/java'], repo='facebook/react-native (0.72.6, npm)', license='MIT')],
        'javascript': dict(roots=[work/'lodash-4.17.21/package'], repo='lodash/lodash (lodash 4.17.21, npm)', license='MIT'),
        'php': dict(roots=[x/'usr/share/php'], repo='pear/pear-core (PEAR 1.10.13, Debian php-pear)', license='BSD-2-Clause'),
        'python': dict(roots=[std/p for p in PY_MODULES], repo='python/cpython (Python 3.11.7 standard library)', license='PSF-2.0'),
        'ruby': dict(roots=[x/'usr/lib/ruby/3.1.0'], repo='ruby/ruby (Ruby 3.1.2 standard library, Debian libruby3.1)', license='BSD-2-Clause / Ruby'),
    }
    bb = work/'bigbench-1.0.0/bigbench/benchmark_tasks/code_line_description/task.json'
    for f, info in build_task_data(a.out, sources, bb if bb.is_file() else None, n=a.n)['files'].items(): print(f, info['n'])

if __name__ == '__main__': main()
