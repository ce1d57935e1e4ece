import os
import os.path as osp
import shutil

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name: str) -> list:
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'ipsd_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension() -> None:
    """Ship configs/ and tools/ under ipsd_mm/.mim/, as OpenMMLab packages do, so that
    ``mim train ipsd_mm CONFIG`` finds them: symlinks for an editable install, copies for a
    wheel."""
    mode = 'symlink' if 'develop' in os.sys.argv or 'editable_wheel' in os.sys.argv else 'copy'
    mim_dir = osp.join(HERE, 'ipsd_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in ('configs', 'tools', 'README.md'):
        src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='ipsd_mm',
        version=version(),
        description='Intra-class Patch Swap self-distillation for MMDetection and MMSegmentation',
        long_description=open(osp.join(HERE, 'README.md')).read() if osp.exists('README.md') else '',
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
        include_package_data=True,
        package_data={'ipsd_mm': ['.mim/configs/**/*.py', '.mim/tools/*', '.mim/README.md']},
        python_requires='>=3.8',
        install_requires=['torch'] + read_requirements('runtime'),
        extras_require={
            'tests': read_requirements('tests'),
            'demo': read_requirements('demo'),
            'kd': read_requirements('kd'),
        },
        zip_safe=False,
    )
