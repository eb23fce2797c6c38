# Jupyter's configuration in kube-netlab's container image (/etc/jupyter/): a notebook saved in
# the browser is also copied to /out/notebooks/, the folder `docker run -v …:/out` keeps after
# the container is gone.
import os
import shutil

OUT = "/out/notebooks"


def copy_to_out(model, os_path, contents_manager, **kwargs):
    if model.get("type") != "notebook":
        return
    os.makedirs(OUT, exist_ok=True)
    dest = os.path.join(OUT, os.path.basename(os_path))
    # out/notebooks is a link to /out/notebooks: a notebook saved there is already in place.
    if os.path.realpath(os_path) == os.path.realpath(dest):
        return
    shutil.copyfile(os_path, dest)


c.FileContentsManager.post_save_hook = copy_to_out  # noqa: F821 (Jupyter defines c)
