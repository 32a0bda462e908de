# lavahub/base: IPython's configuration for the image's Python environment.
#
# IPython reads ipython_config.py from <sys.prefix>/etc/ipython (and from /etc/ipython and the
# user's profile) in every kernel and in `ipython`, so every notebook and console of the image
# has the %%job magic without a `%load_ext`. It is in ${CONDA_DIR}/etc/ipython rather than
# /etc/ipython so that a kernel from another environment (a user's own conda env, without
# lavahub-jupyter) does not try to load it. `append` keeps what a user's profile adds.
c = get_config()  # noqa: F821 (IPython defines get_config while it reads this file)
c.InteractiveShellApp.extensions.append("lavahub_jupyter")
