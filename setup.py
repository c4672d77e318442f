from configparser import ConfigParser
from pathlib import Path
import setuptools, shlex, shutil
from setuptools.command.build_py import build_py

# note: all settings are in settings.ini; edit there, not here
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o:cfg[o] for o in cfg_keys}

licenses = {
    'apache2': ('Apache Software License 2.0','OSI Approved :: Apache Software License'),
    'mit': ('MIT License', 'OSI Approved :: MIT License'),
}
statuses = [ '1 - Planning', '2 - Pre-Alpha', '3 - Alpha',
    '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive' ]
py_versions = '3.10 3.11 3.12'.split()

def reqs(key): return shlex.split(cfg.get(key, '').strip())
requirements = reqs('requirements')
if cfg.get('pip_requirements'): requirements += reqs('pip_requirements')
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
# Backends are extras so a notebook user's torch stays as it is unless they ask for one.
extras = {k: reqs(f'{k}_requirements') for k in ('gptq', 'gguf', 'eval', 'ray', 'dev')}
extras['all'] = extras['gptq'] + extras['gguf'] + extras['eval']

class build_py_with_examples(build_py):
    "Ship the example configs and the stage notebooks inside the package: `quantized-llms run smollm2-135m` and `batch` work from a wheel."
    def run(self):
        super().run()
        for folder, pattern in (('configs', '*.yaml'), ('configs/profiles', '*.yaml'), ('nbs', '*.ipynb')):
            dest = Path(self.build_lib)/cfg['lib_path']/folder
            dest.mkdir(parents=True, exist_ok=True)
            for f in sorted(Path(folder).glob(pattern)): shutil.copy2(f, dest/f.name)

setuptools.setup(
    cmdclass = {'build_py': build_py_with_examples},
    name = cfg['lib_name'],
    license = lic[0],
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: '+o for o in py_versions[py_versions.index(min_python):]] + (['License :: ' + lic[1] ] if lic[1] else []),
    url = cfg['git_url'],
    packages = setuptools.find_packages(),
    include_package_data = True,
    package_data = {'quantized_llms': ['corpus/*', 'corpus/tasks/*']},
    install_requires = requirements,
    extras_require = extras,
    python_requires  = '>=' + cfg['min_python'],
    long_description = open('README.md', encoding='utf-8').read(),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']
    },
    **setup_cfg)
