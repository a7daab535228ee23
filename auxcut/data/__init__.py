"""The data: the built-in sources (scikit-learn's digits, UTKFace, any image folder) and the one prepared form
every source becomes on disk (prepared), with UTKFace's file names and class schemes (faces).

May import: auxcut.core.
"""
