# Turns a file into a C++ header holding it as a string constant.
# cmake -DINPUT=... -DOUTPUT=... -DNAME=... -P embed.cmake
file(READ "${INPUT}" CONTENT)
file(WRITE "${OUTPUT}" "// Generated from ${INPUT} at build time; do not edit.\n#pragma once\n#include <string_view>\ninline constexpr std::string_view ${NAME} = R\"rtmlembed(${CONTENT})rtmlembed\";\n")
