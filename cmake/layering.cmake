# The dependency direction of sidecar/ (STYLE.md: rpc -> watch / kafka / store -> common;
# peer/, snapshots and bootstrap, sits above rpc),
# as ranks: code in one folder may use only folders of a lower rank (and its own). The
# same ranks hold for the CMake libraries, one per folder. Top-level sidecar/*.cc (main,
# the composition root) may use everything.
#
# Checked at configure time (cachecar_check_layering_links below, and check_layering.cmake
# on every #include), and by the layering_check test, which also proves the check fails on
# a tree that breaks the rule.
set(CACHECAR_LAYER_RANKS
  common=0 proto=0
  metrics=1 config=1
  store=2 schema=2 transform=2
  api=3 health=3 registry=3
  kafka=4 watch=4
  rpc=5
  peer=6)

# The folder an #include names; generated protos (cachecar/, google/) are `proto`.
function(cachecar_include_layer include out)
  string(REGEX MATCH "^[a-z_0-9]+" top "${include}")
  if(top STREQUAL "cachecar" OR top STREQUAL "google")
    set(top proto)
  endif()
  set(${out} "${top}" PARENT_SCOPE)
endfunction()

function(cachecar_layer_rank layer out)
  set(rank "")
  foreach(pair IN LISTS CACHECAR_LAYER_RANKS)
    string(REPLACE "=" ";" kv "${pair}")
    list(GET kv 0 k)
    list(GET kv 1 v)
    if(k STREQUAL "${layer}")
      set(rank ${v})
    endif()
  endforeach()
  set(${out} "${rank}" PARENT_SCOPE)
endfunction()

# Every library cachecar_<layer> may link only cachecar_ libraries of a lower rank.
function(cachecar_check_layering_links)
  foreach(pair IN LISTS CACHECAR_LAYER_RANKS)
    string(REPLACE "=" ";" kv "${pair}")
    list(GET kv 0 layer)
    list(GET kv 1 rank)
    set(target cachecar_${layer})
    if(NOT TARGET ${target})
      continue()
    endif()
    get_target_property(deps ${target} LINK_LIBRARIES)
    get_target_property(ideps ${target} INTERFACE_LINK_LIBRARIES)
    foreach(dep IN LISTS deps ideps)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
      if(NOT dep MATCHES "^cachecar_([a-z]+)$")
        continue()
      endif()
      set(dep_layer ${CMAKE_MATCH_1})
      if(dep_layer STREQUAL "stats")
        set(dep_layer metrics)
      elseif(dep_layer STREQUAL "version")
        set(dep_layer common)  # common/version.h, a library of its own (rebuilt per commit)
      endif()
      cachecar_layer_rank(${dep_layer} dep_rank)
      if(dep_rank STREQUAL "" OR NOT dep_rank LESS rank)
        message(FATAL_ERROR "layering: ${target} (rank ${rank}) links ${dep} "
                            "(rank ${dep_rank}); dependencies must point down (cmake/layering.cmake)")
      endif()
    endforeach()
  endforeach()
endfunction()
