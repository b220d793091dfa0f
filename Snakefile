# MicroLib pipeline: DoITPoMS micrographs -> SliceGAN 3D microstructure library.
#   snakemake --cores 2 --configfile config/demo.yaml     offline demo (built-in library)
#   snakemake --cores 8 --profile slurm                     real run on a SLURM cluster
#   snakemake --cores 2 --configfile config/demo.yaml microstructure003   one entry by name
#   snakemake --cores 2 --configfile config/demo.yaml family_blobs        one family by name
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/scrape.smk"
include: "workflow/rules/annotate.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/inpaint.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/media.smk"
include: "workflow/rules/family.smk"
include: "workflow/rules/package.smk"


rule all:
    default_target: True
    input:
        rules.package.output,
        family_dataset_inputs,
